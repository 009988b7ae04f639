//! How waspctl prints: aligned tables by default, JSON with `-o json`.

use std::io::Write;

/// Prints rows under `headers` with columns padded to their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = widths[i]))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", line(headers.to_vec()));
    for row in rows {
        let _ = writeln!(out, "{}", line(row.iter().map(String::as_str).collect()));
    }
}

/// Prints `value` as pretty JSON.
pub fn json(value: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{}",
        serde_json::to_string_pretty(value).expect("JSON")
    );
}

/// Prints a line of text.
pub fn text(line: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

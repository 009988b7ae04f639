//! `waspctl diff [V1] [V2]`: a unified diff of two configuration versions'
//! documents, fetched with `GetConfig` and compared here (the `similar`
//! crate's line diff). No version: the one before the current one against
//! the current one; one: that version against the current one; two: the
//! first against the second.

use serde_json::json;
use similar::{ChangeTag, TextDiff};
use wasp_controlplane_api as api;

use crate::Output;
use crate::connect::{Client, status};
use crate::output;
use wasp_controlplane::targeting;

/// Lines of context around each change.
const CONTEXT: usize = 3;

/// Which versions to compare: `None` stands for the current one.
pub struct Versions {
    /// The older side [default: the one before the current version].
    pub from: Option<u64>,
    /// The newer side [default: the current version].
    pub to: Option<u64>,
}

/// Fetches both versions and prints their diff.
pub async fn show(
    client: &mut Client,
    out: Output,
    versions: Versions,
    resolved: bool,
) -> Result<(), String> {
    let (from, to) = match versions {
        Versions {
            from: None,
            to: None,
        } => {
            let to = get(client, 0).await?;
            if to.version <= 1 {
                return Err(format!(
                    "version {} is the only configuration version: nothing to compare it with",
                    to.version
                ));
            }
            (get(client, to.version - 1).await?, to)
        }
        Versions { from, to } => {
            let from = get(client, from.unwrap_or(0)).await?;
            let to = get(client, to.unwrap_or(0)).await?;
            (from, to)
        }
    };
    let document = |c: &api::ConfigVersion| {
        if resolved {
            c.resolved.clone()
        } else {
            c.document.clone()
        }
    };
    let (old, new) = (document(&from), document(&to));
    let diff = TextDiff::from_lines(&old, &new);
    let mut unified = diff.unified_diff();
    unified
        .context_radius(CONTEXT)
        .header(&header(&from), &header(&to));
    let text = if old == new {
        String::new()
    } else {
        unified.to_string()
    };
    match out {
        Output::Json => {
            let hunks: Vec<serde_json::Value> = unified
                .iter_hunks()
                .map(|hunk| {
                    let lines: Vec<String> = hunk
                        .iter_changes()
                        .map(|change| {
                            let sign = match change.tag() {
                                ChangeTag::Delete => '-',
                                ChangeTag::Insert => '+',
                                ChangeTag::Equal => ' ',
                            };
                            format!("{sign}{}", change.value().trim_end_matches('\n'))
                        })
                        .collect();
                    json!({"header": hunk.header().to_string(), "lines": lines})
                })
                .collect();
            output::json(&json!({
                "from": side_json(&from),
                "to": side_json(&to),
                "resolved": resolved,
                "same": text.is_empty(),
                "diff": text,
                "hunks": hunks,
            }));
        }
        Output::Table if text.is_empty() => output::text(&format!(
            "versions {} and {} have the same {}",
            from.version,
            to.version,
            if resolved {
                "resolved document"
            } else {
                "document"
            }
        )),
        Output::Table => output::text(text.trim_end_matches('\n')),
    }
    Ok(())
}

async fn get(client: &mut Client, version: u64) -> Result<api::ConfigVersion, String> {
    Ok(client
        .get_config(api::GetConfigRequest { version })
        .await
        .map_err(status)?
        .into_inner())
}

/// `version 3 (alice, 2026-12-02T10:00:00Z, for app=web): why`.
fn header(c: &api::ConfigVersion) -> String {
    let mut about = vec![c.author.clone(), c.created_at.clone()];
    if !c.selector.is_empty() {
        about.push(format!(
            "for {}",
            targeting::display(&c.selector.clone().into_iter().collect())
        ));
    }
    let mut line = format!("version {} ({})", c.version, about.join(", "));
    if !c.message.is_empty() {
        line.push_str(": ");
        line.push_str(&c.message.replace('\n', " "));
    }
    line
}

fn side_json(c: &api::ConfigVersion) -> serde_json::Value {
    json!({
        "version": c.version,
        "author": c.author,
        "created_at": c.created_at,
        "message": c.message,
        "selector": c.selector,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_names_the_version_its_author_time_selector_and_message() {
        let mut c = api::ConfigVersion {
            version: 3,
            author: "alice".into(),
            created_at: "2026-12-02T10:00:00Z".into(),
            message: "more\nheaders".into(),
            ..Default::default()
        };
        assert_eq!(
            header(&c),
            "version 3 (alice, 2026-12-02T10:00:00Z): more headers"
        );
        c.message.clear();
        c.selector.insert("app".into(), "web".into());
        assert_eq!(
            header(&c),
            "version 3 (alice, 2026-12-02T10:00:00Z, for app=web)"
        );
    }
}

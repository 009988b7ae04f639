//! Bytes from the host as text: checked eight bytes at a time for ASCII
//! (header maps and property values nearly always are), and through the
//! standard library's UTF-8 validation only when a byte is not. On
//! `wasm32` the standard library's check goes a pointer-sized word (four
//! bytes) at a time; header maps are hundreds of bytes and every filter
//! that reads one pays for it.

use std::string::FromUtf8Error;

/// `bytes` as a `String`, or the error `String::from_utf8` gives.
pub(crate) fn utf8(bytes: Vec<u8>) -> Result<String, FromUtf8Error> {
    if is_ascii(&bytes) {
        // SAFETY: ASCII is UTF-8.
        Ok(unsafe { String::from_utf8_unchecked(bytes) })
    } else {
        String::from_utf8(bytes)
    }
}

/// `bytes` as text, invalid UTF-8 replaced (copied only then).
pub(crate) fn lossy(bytes: Vec<u8>) -> String {
    utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Whether every byte is ASCII, eight at a time.
fn is_ascii(bytes: &[u8]) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut words = bytes.chunks_exact(8);
    let mut high = 0;
    for word in &mut words {
        high |= u64::from_le_bytes([
            word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7],
        ]);
    }
    high & HIGH == 0 && words.remainder().is_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_and_utf8_are_text_and_a_bad_byte_anywhere_is_caught() {
        for len in 0..40 {
            let ascii: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            assert_eq!(utf8(ascii.clone()).unwrap().as_bytes(), &ascii[..]);
            for at in 0..len {
                let mut bad = ascii.clone();
                bad[at] = 0xff;
                assert!(utf8(bad.clone()).is_err(), "0xff at {at} of {len}");
                assert_eq!(lossy(bad).chars().nth(at), Some('\u{fffd}'));
            }
        }
        let accented = "café, naïve: ünïcödé text".as_bytes().to_vec();
        assert_eq!(utf8(accented).unwrap(), "café, naïve: ünïcödé text");
    }
}

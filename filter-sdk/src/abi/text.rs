//! Bytes from the host as text: checked eight bytes at a time for ASCII
//! (header maps and property values nearly always are), and through the
//! standard library's UTF-8 validation only when a byte is not; and header
//! names checked for upper case eight bytes at a time too. On
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
    let (words, rest) = words(bytes);
    words.fold(0, |high, word| high | word) & HIGH == 0 && rest.is_ascii()
}

/// Whether `bytes` has an ASCII upper-case letter, looked for eight bytes
/// at a time (every header name a filter edits is checked; a byte at a
/// time cost more than the hostcall).
pub(crate) fn has_ascii_uppercase(bytes: &[u8]) -> bool {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Per byte, with its top bit cleared (so no sum carries into the next
    // byte): + 0x3f sets the top bit from `A` (0x41) on, + 0x25 from
    // past `Z` (0x5b) on; a byte whose own top bit was set is no letter.
    let upper = |x: u64| {
        let low = x & LOW7;
        let from_a = low + 0x3f3f_3f3f_3f3f_3f3f;
        let past_z = low + 0x2525_2525_2525_2525;
        from_a & !past_z & !x & HIGH != 0
    };
    let (mut words, rest) = words(bytes);
    words.any(upper) || rest.iter().any(u8::is_ascii_uppercase)
}

/// `bytes` as little-endian `u64`s, eight bytes each, and the last few
/// bytes that make no word.
fn words(bytes: &[u8]) -> (impl Iterator<Item = u64> + '_, &[u8]) {
    let (whole, rest) = bytes.split_at(bytes.len() & !7);
    let words = whole
        .chunks_exact(8)
        .map(|w| u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]));
    (words, rest)
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

    #[test]
    fn upper_case_letters_are_found_at_every_position_and_nothing_else_is() {
        for byte in 0..=255u8 {
            for len in 1..=19 {
                for at in 0..len {
                    let mut bytes = vec![b'x'; len];
                    bytes[at] = byte;
                    assert_eq!(
                        has_ascii_uppercase(&bytes),
                        byte.is_ascii_uppercase(),
                        "byte {byte:#x} at {at} of {len}"
                    );
                }
            }
        }
        assert!(!has_ascii_uppercase(b""));
    }
}

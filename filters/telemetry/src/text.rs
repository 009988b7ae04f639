//! Short ASCII values (hex ids, trace header values) written into stack
//! buffers, so that propagating a trace allocates nothing.

use std::fmt;
use std::ops::Deref;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// ASCII text of at most `N` bytes, kept on the stack.
#[derive(Clone, Copy)]
pub struct Text<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> Default for Text<N> {
    fn default() -> Self {
        Text {
            bytes: [0; N],
            len: 0,
        }
    }
}

impl<const N: usize> Text<N> {
    /// Appends `text` (ASCII; the callers' sizes are fixed, so it fits).
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.push_ascii(text.as_bytes())
    }

    /// Appends another text (its bytes as they are: no UTF-8 check, as a
    /// `&str` of it would make).
    pub fn push_text<const M: usize>(&mut self, text: &Text<M>) -> &mut Self {
        self.push_ascii(&text.bytes[..text.len])
    }

    /// Appends ASCII bytes.
    fn push_ascii(&mut self, bytes: &[u8]) -> &mut Self {
        let end = self.len + bytes.len();
        self.bytes[self.len..end].copy_from_slice(bytes);
        self.len = end;
        self
    }

    /// Appends the low `digits` (at most 32) hex digits of `value`,
    /// lowercase and zero-padded (`{:0digits$x}` of the value truncated to
    /// those digits).
    pub fn hex(&mut self, value: u128, digits: usize) -> &mut Self {
        if digits > 16 {
            self.hex64((value >> 64) as u64, digits - 16);
        }
        self.hex64(value as u64, digits.min(16))
    }

    /// [`Text::hex`] of at most 16 digits, with 64-bit shifts only (a
    /// 128-bit shift is a library call on wasm32).
    fn hex64(&mut self, value: u64, digits: usize) -> &mut Self {
        let end = self.len + digits;
        for (i, byte) in self.bytes[self.len..end].iter_mut().enumerate() {
            let shift = 4 * (digits - 1 - i);
            *byte = HEX[((value >> shift) & 0xf) as usize];
        }
        self.len = end;
        self
    }

    /// The text's bytes (ASCII), without the UTF-8 check of
    /// [`Text::as_str`].
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever written.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl<const N: usize> Deref for Text<N> {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> fmt::Debug for Text<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> fmt::Display for Text<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> PartialEq<&str> for Text<N> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_digits_are_lowercase_padded_and_truncated_as_format_writes_them() {
        for value in [
            0u128,
            1,
            0xabc,
            u64::MAX as u128,
            u128::MAX,
            0x0123_4567_89ab_cdef,
        ] {
            let mut text = Text::<64>::default();
            text.hex(value, 32)
                .push("-")
                .hex(value, 16)
                .push("-")
                .hex(value, 2);
            let expected = format!("{value:032x}-{:016x}-{:02x}", value as u64, value as u8);
            assert_eq!(text.as_str(), expected);
            let mut joined = Text::<80>::default();
            joined.push("<").push_text(&text).push(">");
            assert_eq!(joined.as_str(), format!("<{expected}>"));
        }
    }
}

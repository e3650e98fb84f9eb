//! Crockford base32: the human-typable alphabet used by claim codes and token ids.
//!
//! Decoding is forgiving the way Crockford specifies: case-insensitive, `O` reads as
//! `0`, `I` and `L` read as `1`, hyphens and spaces are ignored. The check symbol is
//! the value modulo 37, drawn from the 32 symbols plus `*~$=U`.

/// The 32 encoding symbols.
pub const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// The 37 check symbols (the alphabet plus five extra).
pub const CHECK_ALPHABET: &[u8; 37] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ*~$=U";

/// Why a Crockford string did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A character that is not a Crockford symbol.
    #[error("character {0:?} is not allowed (use 0-9 and A-Z without I, L, O, U)")]
    InvalidCharacter(char),
    /// The check symbol does not match: a typo somewhere.
    #[error("check character does not match: the code has a typo")]
    CheckMismatch,
    /// Wrong number of symbols.
    #[error("expected {expected} characters, got {got}")]
    Length { expected: usize, got: usize },
}

/// Value (0..32) of one symbol after Crockford normalisation.
pub fn symbol_value(c: char) -> Result<u8, DecodeError> {
    let up = c.to_ascii_uppercase();
    let up = match up {
        'O' => '0',
        'I' | 'L' => '1',
        other => other,
    };
    ALPHABET
        .iter()
        .position(|&s| s as char == up)
        .map(|p| p as u8)
        .ok_or(DecodeError::InvalidCharacter(c))
}

/// Value (0..37) of a check symbol.
pub fn check_value(c: char) -> Result<u8, DecodeError> {
    let up = c.to_ascii_uppercase();
    if let Some(p) = CHECK_ALPHABET[32..].iter().position(|&s| s as char == up) {
        return Ok(32 + p as u8);
    }
    symbol_value(c)
}

/// Encodes `values` (each < 32) as symbols.
pub fn encode_symbols(values: &[u8]) -> String {
    values
        .iter()
        .map(|&v| ALPHABET[(v & 31) as usize] as char)
        .collect()
}

/// Encodes random bytes as `n` symbols, five bits each (bits beyond `5 * n` are dropped).
pub fn encode_bits(bytes: &[u8], n: usize) -> String {
    let mut out = String::with_capacity(n);
    let mut acc: u32 = 0;
    let mut bits = 0;
    let mut iter = bytes.iter();
    while out.len() < n {
        if bits < 5 {
            match iter.next() {
                Some(&b) => {
                    acc = (acc << 8) | b as u32;
                    bits += 8;
                }
                None => {
                    acc <<= 5 - bits;
                    bits = 5;
                }
            }
        }
        let v = (acc >> (bits - 5)) & 31;
        bits -= 5;
        acc &= (1 << bits) - 1;
        out.push(ALPHABET[v as usize] as char);
    }
    out
}

/// Crockford check symbol for a sequence of symbol values (big-endian number mod 37).
pub fn check_symbol(values: &[u8]) -> char {
    let m = values
        .iter()
        .fold(0u32, |acc, &v| (acc * 32 + v as u32) % 37);
    CHECK_ALPHABET[m as usize] as char
}

/// Normalises and decodes `text` into symbol values, ignoring hyphens and spaces.
pub fn decode_symbols(text: &str) -> Result<Vec<u8>, DecodeError> {
    text.chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(symbol_value)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_confusable_letters() {
        assert_eq!(decode_symbols("o1-Il").unwrap(), vec![0, 1, 1, 1]);
        assert_eq!(decode_symbols("zz").unwrap(), vec![31, 31]);
        assert!(matches!(
            decode_symbols("U"),
            Err(DecodeError::InvalidCharacter('U'))
        ));
        assert!(matches!(
            decode_symbols("#"),
            Err(DecodeError::InvalidCharacter('#'))
        ));
    }

    #[test]
    fn check_symbol_is_value_mod_37() {
        // 32 = "10" in base 32; 32 mod 37 = 32 -> '*'.
        assert_eq!(check_symbol(&[1, 0]), '*');
        assert_eq!(check_symbol(&[0]), '0');
        // 32 + 5 = 37 -> 0; 32 + 6 = 38 -> 1.
        assert_eq!(check_symbol(&[1, 5]), '0');
        assert_eq!(check_symbol(&[1, 6]), '1');
        assert_eq!(check_symbol(&[1, 4]), 'U');
    }

    #[test]
    fn encodes_bits_msb_first() {
        assert_eq!(encode_bits(&[0xff], 2), "ZW");
        assert_eq!(encode_bits(&[0, 0, 0, 0, 0], 8), "00000000");
        assert_eq!(encode_bits(&[0xff; 5], 8), "ZZZZZZZZ");
    }
}

//! Claim codes: short, human-typable one-time codes a field tech enters on a replacement
//! box, formatted `XXXX-XXXX-C`.
//!
//! Eight Crockford symbols (40 bits) plus a check symbol. The first four symbols are the
//! public claim id (stores index it, rate limits count per id, logs may name it); the last
//! four are the secret part, stored only hashed. The check symbol catches a typo before
//! any lookup, so a mistyped code never burns a rate-limit attempt on a real claim.

use crate::crockford::{self, DecodeError};
use crate::secret::SecretString;

/// Symbols in the id part.
pub const ID_LEN: usize = 4;
/// Symbols in the secret part.
pub const SECRET_LEN: usize = 4;
/// Random bytes needed to mint one code.
pub const RANDOM_BYTES: usize = 5;

/// A parsed claim code. `Debug` and `Display` show only the id.
#[derive(Clone, PartialEq, Eq)]
pub struct ClaimCode {
    id: String,
    secret: SecretString,
}

impl ClaimCode {
    /// Mints a code from caller-supplied random bytes.
    pub fn from_random(random: &[u8; RANDOM_BYTES]) -> Self {
        let symbols = crockford::encode_bits(random, ID_LEN + SECRET_LEN);
        Self {
            id: symbols[..ID_LEN].to_string(),
            secret: SecretString::new(symbols[ID_LEN..].to_string()),
        }
    }

    /// Parses what a human typed: case-insensitive, hyphens and spaces ignored, `O`/`I`/`L`
    /// read as digits; the check symbol must match.
    pub fn parse(text: &str) -> Result<Self, DecodeError> {
        let chars: Vec<char> = text
            .chars()
            .filter(|c| *c != '-' && !c.is_whitespace())
            .collect();
        let want = ID_LEN + SECRET_LEN + 1;
        if chars.len() != want {
            return Err(DecodeError::Length {
                expected: want,
                got: chars.len(),
            });
        }
        let values: Vec<u8> = chars[..want - 1]
            .iter()
            .map(|&c| crockford::symbol_value(c))
            .collect::<Result<_, _>>()?;
        let check = crockford::check_value(chars[want - 1])?;
        if crockford::CHECK_ALPHABET[check as usize] as char != crockford::check_symbol(&values) {
            return Err(DecodeError::CheckMismatch);
        }
        let symbols = crockford::encode_symbols(&values);
        Ok(Self {
            id: symbols[..ID_LEN].to_string(),
            secret: SecretString::new(symbols[ID_LEN..].to_string()),
        })
    }

    /// The public claim id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// SHA-256 (hex) of the secret part, salted with the id so equal secrets differ.
    pub fn secret_hash(&self) -> String {
        crate::secret::sha256_hex(format!("{}:{}", self.id, self.secret.expose()).as_bytes())
    }

    /// The display form `XXXX-XXXX-C` for the one place that shows it to a person.
    pub fn to_secret_string(&self) -> SecretString {
        let values = crockford::decode_symbols(&format!("{}{}", self.id, self.secret.expose()))
            .expect("canonical symbols");
        let check = crockford::check_symbol(&values);
        SecretString::new(format!("{}-{}-{check}", self.id, self.secret.expose()))
    }
}

impl std::fmt::Debug for ClaimCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClaimCode(id={}, secret=<redacted>)", self.id)
    }
}

impl std::fmt::Display for ClaimCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "claim {}", self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_formats() {
        let c = ClaimCode::from_random(&[0x3a, 0x91, 0x07, 0xfe, 0x55]);
        let text = c.to_secret_string();
        assert_eq!(text.expose().len(), 11);
        assert_eq!(&text.expose()[4..5], "-");
        assert_eq!(ClaimCode::parse(text.expose()).unwrap(), c);
        let sloppy = text.expose().to_lowercase().replace('-', " ");
        assert_eq!(ClaimCode::parse(&sloppy).unwrap(), c);
    }

    #[test]
    fn every_single_symbol_typo_is_caught() {
        let c = ClaimCode::from_random(&[1, 2, 3, 4, 5]);
        let text: Vec<char> = c.to_secret_string().expose().chars().collect();
        for pos in [0usize, 1, 2, 3, 5, 6, 7, 8] {
            for &sym in crockford::ALPHABET.iter() {
                let sym = sym as char;
                if sym == text[pos] {
                    continue;
                }
                let mut typo = text.clone();
                typo[pos] = sym;
                let typo: String = typo.into_iter().collect();
                assert_eq!(
                    ClaimCode::parse(&typo),
                    Err(DecodeError::CheckMismatch),
                    "{pos}"
                );
            }
        }
    }

    #[test]
    fn adjacent_transpositions_are_caught() {
        let c = ClaimCode::from_random(&[9, 8, 7, 6, 5]);
        let s: Vec<char> = c
            .to_secret_string()
            .expose()
            .replace('-', "")
            .chars()
            .collect();
        for i in 0..7 {
            if s[i] == s[i + 1] {
                continue;
            }
            let mut t = s.clone();
            t.swap(i, i + 1);
            let t: String = t.into_iter().collect();
            assert!(ClaimCode::parse(&t).is_err(), "swap at {i}");
        }
    }

    #[test]
    fn rejects_wrong_length_and_characters() {
        assert!(matches!(
            ClaimCode::parse("7KQ2-M9XD"),
            Err(DecodeError::Length { .. })
        ));
        assert!(matches!(
            ClaimCode::parse("7KQ2-M9X#-4"),
            Err(DecodeError::InvalidCharacter('#'))
        ));
    }

    #[test]
    fn debug_hides_the_secret() {
        let c = ClaimCode::from_random(&[0xaa, 0xbb, 0xcc, 0xdd, 0xee]);
        let shown = format!("{c:?} {c}");
        assert!(!shown.contains(&c.to_secret_string().expose()[5..9]));
    }
}

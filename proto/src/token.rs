//! The bearer token that guards a TCP listener, read from a file only its owner can
//! read (the same rule on both ends: `pmon-server --token-file` and `pmon --token-file`).
//!
//! ```text
//! token file (mode 0600, one line) ─► Token ─► server: compare in constant time
//!                                          └─► client: `authorization: Bearer <token>`
//! ```
//!
//! A token is never printed: its `Debug` hides it, and errors name the file, not the
//! contents.

use std::{
    fmt, fs, io,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

/// Environment variable naming the token file for `pmon`.
pub const TOKEN_FILE_ENV: &str = "PMON_TOKEN_FILE";

/// The shortest token accepted: shorter ones can be guessed.
pub const MIN_TOKEN_LEN: usize = 16;

/// How to make a good token file, for error messages and help.
pub const HOW_TO_MAKE: &str = "(umask 077; head -c 32 /dev/urandom | base64 > FILE)";

/// A bearer token.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

/// Why a token file was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file could not be read.
    #[error("cannot read token file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Others than its owner may read it.
    #[error(
        "token file {path} has mode {mode:04o}, so others than its owner may read it; \
         it must be mode 0600: chmod 600 {path}"
    )]
    Mode {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Not a regular file.
    #[error("token file {path} is not a regular file")]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// Too short or with characters a header cannot carry.
    #[error(
        "token file {path} must hold one line of at least {MIN_TOKEN_LEN} visible ASCII characters \
         (no spaces); make one with {HOW_TO_MAKE}"
    )]
    Malformed {
        /// The file.
        path: PathBuf,
    },
}

impl Token {
    /// Reads a token file: a regular file of mode 0600 (or stricter) holding one line
    /// of visible ASCII; surrounding whitespace is ignored.
    pub fn read(path: &Path) -> Result<Token, TokenError> {
        let read_err = |source| TokenError::Read { path: path.to_path_buf(), source };
        let meta = fs::metadata(path).map_err(read_err)?;
        if !meta.is_file() {
            return Err(TokenError::NotAFile { path: path.to_path_buf() });
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(TokenError::Mode { path: path.to_path_buf(), mode });
        }
        let text = fs::read_to_string(path).map_err(read_err)?;
        Token::parse(&text).ok_or_else(|| TokenError::Malformed { path: path.to_path_buf() })
    }

    /// A token from a file's text, if it is well formed.
    pub fn parse(text: &str) -> Option<Token> {
        let token = text.trim();
        let visible = token.bytes().all(|b| b.is_ascii_graphic());
        (token.len() >= MIN_TOKEN_LEN && visible).then(|| Token(token.to_string()))
    }

    /// The token itself, to store it (never to log it).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value of the `authorization` header a client sends.
    pub fn header_value(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// Whether an `authorization` header value carries this token. The comparison
    /// takes the same time wherever the two differ, so timing reveals nothing about
    /// how much of a guess was right (only whether its length was).
    pub fn accepts(&self, header: &[u8]) -> bool {
        let Some(presented) = header.strip_prefix(b"Bearer ") else {
            return false;
        };
        subtle::ConstantTimeEq::ct_eq(presented, self.0.as_bytes()).into()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<hidden>)")
    }
}

#[cfg(test)]
mod tests {
    use std::fs::Permissions;

    use super::*;

    const GOOD: &str = "c2VjcmV0LXRva2VuLWZvci10ZXN0cw==";

    fn file(dir: &Path, text: &str, mode: u32) -> PathBuf {
        let path = dir.join("token");
        fs::write(&path, text).expect("write");
        fs::set_permissions(&path, Permissions::from_mode(mode)).expect("chmod");
        path
    }

    #[test]
    fn reads_an_owner_only_file_and_trims_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let token = Token::read(&file(dir.path(), &format!("{GOOD}\n"), 0o600)).expect("accepted");
        assert_eq!(token.header_value(), format!("Bearer {GOOD}"));
        assert!(Token::read(&file(dir.path(), GOOD, 0o400)).is_ok(), "read-only for the owner is fine");
    }

    #[test]
    fn refuses_a_file_others_may_read_saying_why() {
        let dir = tempfile::tempdir().expect("tempdir");
        for mode in [0o644, 0o640, 0o604, 0o660] {
            let err = Token::read(&file(dir.path(), GOOD, mode)).expect_err("refused").to_string();
            assert!(err.contains(&format!("mode {mode:04o}")), "{err}");
            assert!(err.contains("chmod 600"), "{err}");
            assert!(!err.contains(GOOD), "the token is never shown: {err}");
        }
    }

    #[test]
    fn refuses_short_or_unprintable_tokens_and_missing_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        for text in ["", "short", "has a space in the middle", "tab\there-and-more-chars"] {
            let err = Token::read(&file(dir.path(), text, 0o600)).expect_err(text).to_string();
            assert!(err.contains("at least 16 visible ASCII"), "{err}");
        }
        let missing = Token::read(&dir.path().join("nope")).expect_err("missing").to_string();
        assert!(missing.contains("cannot read token file"), "{missing}");
        let not_file = Token::read(dir.path()).expect_err("a directory").to_string();
        assert!(not_file.contains("not a regular file"), "{not_file}");
    }

    #[test]
    fn accepts_only_the_exact_bearer_token() {
        let token = Token::parse(GOOD).expect("valid");
        assert!(token.accepts(format!("Bearer {GOOD}").as_bytes()));
        for wrong in [
            String::new(),
            GOOD.to_string(),
            format!("bearer {GOOD}"),
            format!("Bearer {GOOD}x"),
            format!("Bearer {}", &GOOD[1..]),
            format!("Bearer {}A", &GOOD[..GOOD.len() - 1]),
        ] {
            assert!(!token.accepts(wrong.as_bytes()), "{wrong}");
        }
    }

    #[test]
    fn debug_hides_the_token() {
        let token = Token::parse(GOOD).expect("valid");
        assert!(!format!("{token:?}").contains(GOOD));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(crate::fuzz_tests::cases()))]

        #[test]
        fn token_parsing_never_panics_and_a_token_accepts_its_own_header_only(text in "\\PC{0,64}", other in "\\PC{0,80}") {
            if let Some(token) = Token::parse(&text) {
                proptest::prop_assert!(token.accepts(token.header_value().as_bytes()));
                let header = format!("Bearer {other}");
                proptest::prop_assert_eq!(token.accepts(header.as_bytes()), other == text.trim());
            }
        }
    }
}

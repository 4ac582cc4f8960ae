//! Safety check for the `<Recording>` value of a CDR (manual §2.6, §4.9).
//!
//! The value is a path relative to the device's recorder root, shaped
//! `YYYYMMDD/<caller>_<callee>_<date>_<time>_<callid>[_cg|_cd].wav`. It comes
//! from the network, and later stages join it onto a URL
//! (`…/mcc/Recorder/{Recording}`) and onto a local directory, so anything that
//! could climb out of either (`..`, absolute paths, backslashes, control
//! characters, odd characters that URLs or file systems treat specially) is
//! refused here, once, for every stage.

/// Longest value accepted. The manual's names are ~60 bytes; 255 leaves room
/// for long numbers while keeping every component under common file-name limits.
pub const MAX_RECORDING_LEN: usize = 255;

/// At most `YYYYMMDD/<file>`: a day directory and a file name.
const MAX_COMPONENTS: usize = 2;

/// Why a `<Recording>` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsafePath {
    /// The value is empty (or only spaces).
    #[error("empty path")]
    Empty,
    /// Longer than [`MAX_RECORDING_LEN`] bytes.
    #[error("path too long ({len} bytes)")]
    TooLong { len: usize },
    /// Contains NUL or another control character (tab, newline, DEL, …).
    #[error("control character in path")]
    ControlChar,
    /// Contains `\`, a path separator on Windows.
    #[error("backslash in path")]
    Backslash,
    /// Starts with `/`.
    #[error("absolute path")]
    Absolute,
    /// `a//b` or a trailing `/`.
    #[error("empty path component")]
    EmptyComponent,
    /// A component that is `.`, `..` or starts with a dot (hidden file).
    #[error("dot path component")]
    DotComponent,
    /// More components than `YYYYMMDD/<file>`.
    #[error("too many path components ({count})")]
    TooManyComponents { count: usize },
    /// A character outside letters, digits, `_`, `-` and `.`.
    #[error("character {0:?} not allowed in path")]
    BadChar(char),
}

/// Accepts `YYYYMMDD/<file>` (or a bare `<file>`) made of ASCII letters,
/// digits, `_`, `-` and `.`; refuses everything else (see [`UnsafePath`]).
pub fn check_recording_path(s: &str) -> Result<(), UnsafePath> {
    if s.trim().is_empty() {
        return Err(UnsafePath::Empty);
    }
    if s.len() > MAX_RECORDING_LEN {
        return Err(UnsafePath::TooLong { len: s.len() });
    }
    if s.chars().any(char::is_control) {
        return Err(UnsafePath::ControlChar);
    }
    if s.contains('\\') {
        return Err(UnsafePath::Backslash);
    }
    if s.starts_with('/') {
        return Err(UnsafePath::Absolute);
    }
    let mut count = 0;
    for component in s.split('/') {
        count += 1;
        check_component(component)?;
    }
    if count > MAX_COMPONENTS {
        return Err(UnsafePath::TooManyComponents { count });
    }
    Ok(())
}

fn check_component(component: &str) -> Result<(), UnsafePath> {
    if component.is_empty() {
        return Err(UnsafePath::EmptyComponent);
    }
    // `.`, `..` and hidden names; a leading dot is never part of the manual's shape.
    if component.starts_with('.') {
        return Err(UnsafePath::DotComponent);
    }
    match component
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        Some(c) => Err(UnsafePath::BadChar(c)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_recording_path_accepts_manual_shapes() {
        for ok in [
            "20170308/200_201_20170308_103711_8034_cd.wav",
            "20170309/18201008888_02161205555_20170309_175313_805D_cg.wav",
            "20150827/211_210_20150827_135634_000a_cg.wav",
            "20170706/201_3_20170706_155709_A00B_cg.wav",
            "a-b.wav",
        ] {
            assert_eq!(check_recording_path(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn check_recording_path_rejects_parent_components() {
        assert_eq!(
            check_recording_path("../../etc/passwd"),
            Err(UnsafePath::DotComponent)
        );
        assert_eq!(
            check_recording_path("20170309/.."),
            Err(UnsafePath::DotComponent)
        );
    }

    #[test]
    fn check_recording_path_rejects_hidden_and_current_dir() {
        assert_eq!(
            check_recording_path("./a.wav"),
            Err(UnsafePath::DotComponent)
        );
        assert_eq!(
            check_recording_path("20170309/.htaccess"),
            Err(UnsafePath::DotComponent)
        );
    }

    #[test]
    fn check_recording_path_rejects_absolute() {
        assert_eq!(
            check_recording_path("/etc/passwd"),
            Err(UnsafePath::Absolute)
        );
    }

    #[test]
    fn check_recording_path_rejects_nul_and_control() {
        assert_eq!(
            check_recording_path("20170309/a\0b.wav"),
            Err(UnsafePath::ControlChar)
        );
        assert_eq!(
            check_recording_path("20170309/a_cg.w\nav"),
            Err(UnsafePath::ControlChar)
        );
    }

    #[test]
    fn check_recording_path_rejects_backslash() {
        assert_eq!(
            check_recording_path("20170309\\a.wav"),
            Err(UnsafePath::Backslash)
        );
        assert_eq!(
            check_recording_path("..\\..\\windows"),
            Err(UnsafePath::Backslash)
        );
    }

    #[test]
    fn check_recording_path_rejects_empty_components() {
        assert_eq!(
            check_recording_path("20170309//a.wav"),
            Err(UnsafePath::EmptyComponent)
        );
        assert_eq!(
            check_recording_path("20170309/"),
            Err(UnsafePath::EmptyComponent)
        );
    }

    #[test]
    fn check_recording_path_rejects_three_components() {
        assert_eq!(
            check_recording_path("2017/0309/a.wav"),
            Err(UnsafePath::TooManyComponents { count: 3 })
        );
    }

    #[test]
    fn check_recording_path_rejects_over_long() {
        let long = format!("20170309/{}.wav", "9".repeat(MAX_RECORDING_LEN));
        assert_eq!(
            check_recording_path(&long),
            Err(UnsafePath::TooLong { len: long.len() })
        );
    }

    #[test]
    fn check_recording_path_rejects_odd_characters() {
        assert_eq!(
            check_recording_path("20170309/a b.wav"),
            Err(UnsafePath::BadChar(' '))
        );
        assert_eq!(
            check_recording_path("20170309/a.wav?x=1"),
            Err(UnsafePath::BadChar('?'))
        );
        assert_eq!(
            check_recording_path("C:/a.wav"),
            Err(UnsafePath::BadChar(':'))
        );
    }

    #[test]
    fn check_recording_path_rejects_empty() {
        assert_eq!(check_recording_path(""), Err(UnsafePath::Empty));
        assert_eq!(check_recording_path("  "), Err(UnsafePath::Empty));
    }
}

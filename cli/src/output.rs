//! Everything the CLI prints goes through here, because much of it comes from the daemon: the
//! admin socket's and the tenant API's answers are written by the parent host, which is the
//! adversary (DESIGN §3). A hostile parent could put terminal control sequences in an error
//! message, a history entry, a destination's state or the SAML metadata, and have them reach the
//! tenant's terminal: retitle the window, clear the screen, move the cursor over earlier lines
//! (a forged "enclave verified"), write the clipboard (OSC 52), or reorder text with bidi
//! overrides.
//!
//! So no text is written raw. [`Escaped`] shows every C0 control (tab and newline too), DEL,
//! every C1 control (U+0080 to U+009F: CSI and OSC have 8-bit forms) and the Unicode bidi
//! controls (U+061C, U+200E, U+200F, U+202A to U+202E, U+2066 to U+2069) as visible escapes
//! (`\x1b`, `\r`, `\u{9b}`, `\u{202e}`). The `say!` and `note!` macros format a whole line and
//! write it escaped, to standard output and standard error; the crate denies `println!` and
//! `eprintln!` (`clippy::print_stdout`, `clippy::print_stderr`), so there is no other way out.
//! A whole line is escaped rather than each server field, so a field that is forgotten is
//! escaped all the same.
//!
//! JSON is escaped too: `serde_json` writes C0 controls as `\u00XX` but DEL, C1 and bidi
//! characters raw; [`json`] writes them as `\uXXXX`, which is the same JSON value. Documents
//! meant for a file (the SAML metadata, IAM and KMS templates) keep their newlines and tabs.
//!
//! The CLI's own cursor movements (the `--wait` progress line, `status --watch`) are the only
//! control sequences written: [`redraw_stderr`] and [`Screen`] take them as `&'static str`, which
//! nothing from the daemon can be.

use crate::{CliError, LocalCode, fail};
use serde::Serialize;
use std::borrow::Cow;
use std::fmt;
use std::io::Write as _;

/// How a command prints its result: `--output text|json` (`--json` is `--output json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Lines for people.
    #[default]
    Text,
    /// One JSON document on standard output (errors: one JSON line on standard error).
    Json,
}

impl Format {
    /// Whether this is `--output json`.
    pub fn is_json(self) -> bool {
        self == Format::Json
    }
}

/// Whether `c` could move the cursor, change the terminal's state or reorder the text around it.
pub fn is_control(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        | '\u{61c}' | '\u{200e}' | '\u{200f}'
        | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every [`is_control`] character shown as an escape; the rest as it is.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(f, self.0, |_| false)
    }
}

/// Writes `text` to `f` with every control character escaped but those `keep` allows.
fn write_escaped(f: &mut impl fmt::Write, text: &str, keep: impl Fn(char) -> bool) -> fmt::Result {
    let mut rest = text;
    while let Some(at) = rest.find(|c: char| is_control(c) && !keep(c)) {
        f.write_str(&rest[..at])?;
        let c = rest[at..].chars().next().unwrap_or_default();
        match c {
            '\t' => f.write_str("\\t")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\u{0}'..='\u{1f}' | '\u{7f}' => write!(f, "\\x{:02x}", u32::from(c))?,
            _ => write!(f, "\\u{{{:x}}}", u32::from(c))?,
        }
        rest = &rest[at + c.len_utf8()..];
    }
    f.write_str(rest)
}

/// `text` escaped as [`Escaped`] shows it (borrowed when there is nothing to escape).
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.contains(is_control) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(Escaped(text).to_string())
}

/// A document for a file (XML, a template): controls escaped as [`Escaped`] does, but newlines
/// and tabs kept.
fn escape_document(text: &str) -> Cow<'_, str> {
    let keep = |c: char| c == '\n' || c == '\t';
    if !text.contains(|c: char| is_control(c) && !keep(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let _ = write_escaped(&mut out, text, keep);
    Cow::Owned(out)
}

/// JSON text with every control character but the newlines and tabs of its layout written as
/// `\uXXXX`. In JSON from `serde_json` such a character can only be inside a string, where the
/// escape means the same character, so the value is unchanged.
pub fn escape_json(text: &str) -> Cow<'_, str> {
    let keep = |c: char| c == '\n' || c == '\t';
    if !text.contains(|c: char| is_control(c) && !keep(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_control(c) && !keep(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Writes one line to standard output, escaped. Use `say!`.
#[allow(clippy::print_stdout)]
pub fn stdout_line(text: &str) {
    println!("{}", Escaped(text));
}

/// Writes one line to standard error, escaped. Use `note!`.
#[allow(clippy::print_stderr)]
pub fn stderr_line(text: &str) {
    eprintln!("{}", Escaped(text));
}

/// Writes a document meant for a file (XML, a template) to standard output: controls escaped
/// but newlines and tabs, and a final newline when it has none.
#[allow(clippy::print_stdout)]
pub fn document(text: &str) {
    let text = escape_document(text);
    if text.ends_with('\n') {
        print!("{text}");
    } else {
        println!("{text}");
    }
}

/// Writes JSON text (a template, a document made by `serde_json`) to standard output, with
/// [`escape_json`].
#[allow(clippy::print_stdout)]
pub fn json_text(text: &str) {
    let text = escape_json(text);
    if text.ends_with('\n') {
        print!("{text}");
    } else {
        println!("{text}");
    }
}

/// Prints `v` as pretty JSON on standard output, with [`escape_json`].
pub fn json<T: Serialize + ?Sized>(v: &T) -> Result<(), CliError> {
    let s = serde_json::to_string_pretty(v)
        .map_err(|e| fail(LocalCode::Internal, format!("cannot write JSON: {e}")))?;
    json_text(&s);
    Ok(())
}

/// Redraws the line under the cursor on standard error (a terminal): `\r`, `text` escaped and
/// padded to `width`, `\r`. An empty `text` clears the line.
#[allow(clippy::print_stderr)]
pub fn redraw_stderr(text: &str, width: usize) {
    let text = escape(text);
    eprint!("\r{text:<width$}\r");
    let _ = std::io::stderr().flush();
}

/// A full-screen view on standard output (`status --watch` on a terminal): each frame clears the
/// screen and writes its lines from the top, escaped.
#[derive(Debug, Default)]
pub struct Screen;

impl Screen {
    /// Moves the cursor home and clears the screen.
    const CLEAR: &'static str = "\x1b[H\x1b[2J";

    /// Draws one frame.
    #[allow(clippy::print_stdout)]
    pub fn draw(&mut self, lines: &[String]) {
        let mut out = String::from(Self::CLEAR);
        for line in lines {
            out.push_str(&escape(line));
            out.push('\n');
        }
        print!("{out}");
        let _ = std::io::stdout().flush();
    }
}

/// `say!("…", …)`: one line on standard output, escaped.
macro_rules! say {
    () => {
        $crate::output::stdout_line("")
    };
    ($($arg:tt)*) => {
        $crate::output::stdout_line(&format!($($arg)*))
    };
}

/// `note!("…", …)`: one line on standard error, escaped.
macro_rules! note {
    ($($arg:tt)*) => {
        $crate::output::stderr_line(&format!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_control_is_shown_as_an_escape() {
        assert_eq!(
            Escaped("plain text, ünïcödé …").to_string(),
            "plain text, ünïcödé …"
        );
        assert_eq!(
            Escaped("\x1b]0;owned\x07title").to_string(),
            "\\x1b]0;owned\\x07title"
        );
        assert_eq!(Escaped("a\rb\nc\td").to_string(), "a\\rb\\nc\\td");
        assert_eq!(Escaped("\0\x7f").to_string(), "\\x00\\x7f");
        assert_eq!(Escaped("\u{9b}2J\u{80}").to_string(), "\\u{9b}2J\\u{80}");
        assert_eq!(
            Escaped("abc\u{202e}fed\u{2066}\u{2069}\u{200f}\u{61c}").to_string(),
            "abc\\u{202e}fed\\u{2066}\\u{2069}\\u{200f}\\u{61c}"
        );
        // Neighbours of the ranges are left alone.
        assert_eq!(
            Escaped("\u{a0}\u{2029}\u{206a}").to_string(),
            "\u{a0}\u{2029}\u{206a}"
        );
    }

    #[test]
    fn nothing_dangerous_survives_escaping() {
        let all: String = (0u32..0x2100).filter_map(char::from_u32).collect();
        for shown in [Escaped(&all).to_string(), escape(&all).into_owned()] {
            assert!(!shown.contains(is_control), "{shown:?}");
        }
        let doc = escape_document(&all);
        assert!(
            !doc.contains(|c: char| is_control(c) && c != '\n' && c != '\t'),
            "{doc:?}"
        );
        assert!(doc.contains('\n') && doc.contains('\t'));
    }

    #[test]
    fn escape_borrows_when_clean() {
        assert!(matches!(escape("no controls"), Cow::Borrowed(_)));
        assert!(matches!(escape("\x1b"), Cow::Owned(_)));
    }

    #[test]
    fn json_escapes_keep_the_value() {
        let hostile = "x\x1b[2J\u{9b}\u{202e}\u{7f}\r\ny";
        let raw = serde_json::to_string_pretty(&serde_json::json!({"m": hostile})).unwrap();
        // serde_json leaves DEL, C1 and bidi raw: that is why escape_json exists.
        assert!(raw.contains('\u{9b}') && raw.contains('\u{202e}'));
        let safe = escape_json(&raw);
        assert!(
            !safe.contains(|c: char| is_control(c) && c != '\n'),
            "{safe}"
        );
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["m"], hostile);
        assert_eq!(escape_json("\u{202e}\u{1b}"), "\\u202e\\u001b");
    }
}

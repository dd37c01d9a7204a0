//! BuildKit's `Node.Dump()` S-expression format and Go's `strconv.Quote`.

use super::{RawArg, RawDockerfile, RawInstruction};

/// Quotes `s` like Go's `strconv.Quote`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0b}' => out.push_str("\\v"),
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Go's `strconv.IsPrint`, approximated without Unicode category tables: controls, format
/// characters, separators other than the ASCII space, private-use characters and
/// noncharacters are not printable.
fn is_go_printable(c: char) -> bool {
    let u = c as u32;
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let format_chars = [
        0xAD..=0xAD,
        0x600..=0x605,
        0x61C..=0x61C,
        0x6DD..=0x6DD,
        0x70F..=0x70F,
        0x180E..=0x180E,
        0x200B..=0x200F,
        0x202A..=0x202E,
        0x2060..=0x2064,
        0x2066..=0x206F,
        0xFEFF..=0xFEFF,
        0xFFF9..=0xFFFB,
        0x110BD..=0x110BD,
        0x1D173..=0x1D17A,
        0xE0001..=0xE0001,
        0xE0020..=0xE007F,
        // private use and noncharacters
        0xE000..=0xF8FF,
        0xFDD0..=0xFDEF,
        0xF0000..=0x10FFFF,
    ];
    if format_chars.iter().any(|r| r.contains(&u)) {
        return false;
    }
    (u & 0xFFFE) != 0xFFFE
}

/// Go's `%q` of a `[]string`.
fn quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

impl RawInstruction {
    /// This instruction in BuildKit's dump notation, e.g. `(copy ["--from=a"] "x" "/")`
    /// without the parentheses.
    pub fn dump(&self) -> String {
        let mut s = self.keyword.to_lowercase();
        if !self.flags.is_empty() {
            s.push(' ');
            s.push_str(&quote_list(&self.flags));
        }
        for arg in &self.args {
            s.push(' ');
            match arg {
                RawArg::Word(w) => s.push_str(&go_quote(w)),
                // Go dumps a node with children as `(child)\n` and trims at the end.
                RawArg::Instruction(i) => s.push_str(&format!("({})", i.dump())),
            }
        }
        s.trim().to_string()
    }
}

impl RawDockerfile {
    /// The whole AST in the format of BuildKit's parser test `result` files: one
    /// `(instruction ...)` per line, no trailing newline.
    pub fn dump(&self) -> String {
        let mut s = String::new();
        for i in &self.instructions {
            s.push('(');
            s.push_str(&i.dump());
            s.push_str(")\n");
        }
        s.trim().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        let cases = [
            ("a\"b\\c", r#""a\"b\\c""#),
            ("\u{0}\u{7f}\u{1b}", r#""\x00\x7f\x1b""#),
            ("♥ ☃", "\"♥ ☃\""),
            ("\u{200b}\u{a0}", r#""\u200b\u00a0""#),
            ("\u{f0000}", r#""\U000f0000""#),
        ];
        for (input, want) in cases {
            assert_eq!(go_quote(input), want);
        }
    }
}

//! The exec-form check: is the rest of an instruction a JSON array of strings?
//!
//! Mirrors Go's `encoding/json` as BuildKit uses it: the whole text must be one valid JSON
//! value (surrounding JSON whitespace allowed), lone surrogates decode to U+FFFD, and
//! nesting deeper than 10000 levels is a syntax error.

/// Why a text is not a usable JSON array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonArrayError {
    /// The text does not start with `[`.
    NotArray,
    /// The text is not valid JSON (the instruction falls back to shell form).
    Invalid,
    /// Valid JSON, but an element is not a string (a hard error in BuildKit).
    NotStrings,
}

/// BuildKit's message for [`JsonArrayError::NotStrings`].
pub const NOT_STRINGS_MESSAGE: &str =
    "when using JSON array syntax, arrays must be comprised of strings only";

const MAX_DEPTH: usize = 10000;

/// Parses `text` (leading whitespace allowed) as a JSON array of strings.
pub fn parse_json_array(text: &str) -> Result<Vec<String>, JsonArrayError> {
    let text = text.trim_start();
    if !text.starts_with('[') {
        return Err(JsonArrayError::NotArray);
    }
    let mut p = Parser { s: text.as_bytes(), src: text, i: 0 };
    let mut values = Vec::new();
    let mut all_strings = true;
    p.i = 1;
    p.ws();
    if p.peek() == Some(b']') {
        p.i += 1;
    } else {
        loop {
            p.ws();
            if p.peek() == Some(b'"') {
                values.push(p.string().ok_or(JsonArrayError::Invalid)?);
            } else {
                all_strings = false;
                p.skip_value().ok_or(JsonArrayError::Invalid)?;
            }
            p.ws();
            match p.peek() {
                Some(b',') => p.i += 1,
                Some(b']') => {
                    p.i += 1;
                    break;
                }
                _ => return Err(JsonArrayError::Invalid),
            }
        }
    }
    p.ws();
    if p.i != p.s.len() {
        return Err(JsonArrayError::Invalid);
    }
    if !all_strings {
        return Err(JsonArrayError::NotStrings);
    }
    Ok(values)
}

struct Parser<'a> {
    s: &'a [u8],
    src: &'a str,
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = self.src.get(self.i..self.i + 4)?;
        if !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.i += 4;
        u32::from_str_radix(h, 16).ok()
    }

    /// A string starting at the current `"`.
    fn string(&mut self) -> Option<String> {
        self.i += 1;
        let mut out = String::new();
        loop {
            let start = self.i;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.i += 1;
            }
            out.push_str(&self.src[start..self.i]);
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return Some(out);
                }
                b'\\' => {
                    self.i += 1;
                    let e = self.peek()?;
                    self.i += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{08}'),
                        b'f' => out.push('\u{0c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let c = self.hex4()?;
                            if (0xD800..0xDC00).contains(&c) {
                                // A high surrogate pairs only with a directly following low one.
                                let save = self.i;
                                if self.src[self.i..].starts_with("\\u") {
                                    self.i += 2;
                                    if let Some(lo) = self.hex4().filter(|lo| (0xDC00..0xE000).contains(lo)) {
                                        let cp = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
                                        out.push(char::from_u32(cp).unwrap_or('\u{FFFD}'));
                                        continue;
                                    }
                                }
                                self.i = save;
                                out.push('\u{FFFD}');
                            } else {
                                out.push(char::from_u32(c).unwrap_or('\u{FFFD}'));
                            }
                        }
                        _ => return None,
                    }
                }
                _ => return None,
            }
        }
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        if self.src[self.i..].starts_with(word) {
            self.i += word.len();
            Some(())
        } else {
            None
        }
    }

    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.i += 1;
                }
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return None;
            }
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.i += 1;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return None;
            }
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.i += 1;
            }
        }
        Some(())
    }

    /// Validates one value without building it; iterative so deep nesting cannot overflow
    /// the stack.
    fn skip_value(&mut self) -> Option<()> {
        // Each open container: (is_object, expecting a first element).
        let mut stack: Vec<bool> = Vec::new();
        loop {
            self.ws();
            // Parse one scalar or open a container.
            match self.peek()? {
                b'{' | b'[' => {
                    let obj = self.peek() == Some(b'{');
                    self.i += 1;
                    stack.push(obj);
                    // The enclosing top-level array is one level of Go's depth budget.
                    if stack.len() >= MAX_DEPTH {
                        return None;
                    }
                    self.ws();
                    let close = if obj { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.i += 1;
                        stack.pop();
                    } else {
                        if obj {
                            self.key()?;
                        }
                        continue;
                    }
                }
                b'"' => {
                    self.string()?;
                }
                b't' => self.literal("true")?,
                b'f' => self.literal("false")?,
                b'n' => self.literal("null")?,
                _ => self.number()?,
            }
            // After a complete value: close containers or move to the next element.
            loop {
                let Some(&obj) = stack.last() else {
                    return Some(());
                };
                self.ws();
                match self.peek()? {
                    b',' => {
                        self.i += 1;
                        if obj {
                            self.ws();
                            self.key()?;
                        }
                        break;
                    }
                    b'}' if obj => {
                        self.i += 1;
                        stack.pop();
                    }
                    b']' if !obj => {
                        self.i += 1;
                        stack.pop();
                    }
                    _ => return None,
                }
            }
        }
    }

    fn key(&mut self) -> Option<()> {
        self.ws();
        if self.peek() != Some(b'"') {
            return None;
        }
        self.string()?;
        self.ws();
        if self.peek() != Some(b':') {
            return None;
        }
        self.i += 1;
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases() {
        use JsonArrayError::*;
        let cases: &[(&str, Result<&[&str], JsonArrayError>)] = &[
            ("[]", Ok(&[])),
            (" [ \"a\" , \"b\" ] ", Ok(&["a", "b"])),
            ("[\"\\ud83d\\ude00\"]", Ok(&["😀"])),
            ("[\"\\ud800\"]", Ok(&["\u{FFFD}"])),
            ("[\"a\", {\"x\": [1, 2.5e3, null]}]", Err(NotStrings)),
            ("[\"a\", [\"b\"]]", Err(NotStrings)),
            ("['a']", Err(Invalid)),
            ("[\"a\"", Err(Invalid)),
            ("[\"a\"] x", Err(Invalid)),
            ("[01]", Err(Invalid)),
            ("\"a\"", Err(NotArray)),
            ("[\"a\tb\"]", Err(Invalid)),
        ];
        for (input, want) in cases {
            let got = parse_json_array(input);
            let want = want.clone().map(|v| v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            assert_eq!(got, want, "{input}");
        }
        let deep = format!("[\"a\", {}{}]", "[".repeat(20000), "]".repeat(20000));
        assert_eq!(parse_json_array(&deep), Err(Invalid));
    }
}

//! `--chmod` values: octal (`0755`) or symbolic as in chmod(1) (`u+x`, `go=u-w`, `=rw,+X`).
//! The symbolic form is BSD's `setmode`/`getmode` (what BuildKit uses through
//! `dchapes-mode`), evaluated with a zero umask as in the BuildKit daemon.

const IS_UID: u32 = 0o4000;
const IS_GID: u32 = 0o2000;
const IS_TXT: u32 = 0o1000;
const RWXU: u32 = 0o700;
const RWXG: u32 = 0o070;
const RWXO: u32 = 0o007;
const STANDARD: u32 = IS_UID | IS_GID | RWXU | RWXG | RWXO;
const R_ALL: u32 = 0o444;
const W_ALL: u32 = 0o222;
const X_ALL: u32 = 0o111;

/// A permission override.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Absolute bits (`0o7777` at most): permission, setuid, setgid and sticky bits.
    Octal(u32),
    /// A symbolic chmod(1) expression applied to each entry's own mode.
    Symbolic(String),
}

/// Why a `--chmod` value is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModeError {
    /// Not octal and not valid symbolic syntax.
    #[error("invalid chmod parameter: {value:?}: it should be octal (at most 07777) or symbolic like u+x")]
    Syntax {
        /// The rejected text.
        value: String,
    },
}

impl Mode {
    /// Parses a `--chmod` value the way BuildKit's Dockerfile frontend does: digits are octal
    /// (at most `07777`), anything else must be a valid symbolic mode.
    pub fn parse(value: &str) -> Result<Mode, ModeError> {
        let err = || ModeError::Syntax { value: value.to_string() };
        if value.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
            let v = u32::from_str_radix(value, 8).map_err(|_| err())?;
            if v > 0o7777 {
                return Err(err());
            }
            return Ok(Mode::Octal(v));
        }
        Commands::parse(value).ok_or_else(err)?;
        Ok(Mode::Symbolic(value.to_string()))
    }

    /// Checks the value and turns it into something that can be applied repeatedly.
    pub(crate) fn compile(&self) -> Result<CompiledMode, ModeError> {
        match self {
            Mode::Octal(v) if *v <= 0o7777 => Ok(CompiledMode::Octal(*v)),
            Mode::Octal(v) => Err(ModeError::Syntax { value: format!("{v:o}") }),
            Mode::Symbolic(s) => Commands::parse(s)
                .map(CompiledMode::Symbolic)
                .ok_or_else(|| ModeError::Syntax { value: s.clone() }),
        }
    }
}

/// A parsed [`Mode`].
#[derive(Debug, Clone)]
pub(crate) enum CompiledMode {
    Octal(u32),
    Symbolic(Commands),
}

impl CompiledMode {
    /// The permission and special bits (low 12 bits) for an entry whose current `st_mode`
    /// (type bits included, so `X` can tell directories) is `st_mode`.
    pub(crate) fn apply(&self, st_mode: u32) -> u32 {
        match self {
            CompiledMode::Octal(v) => v & 0o7777,
            CompiledMode::Symbolic(cmds) => cmds.apply(st_mode),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct BitCmd {
    cmd: u8,
    cmd2: u8,
    bits: u32,
}

const CMD2_CLEAR: u8 = 1;
const CMD2_SET: u8 = 2;
const CMD2_GBITS: u8 = 4;
const CMD2_OBITS: u8 = 8;
const CMD2_UBITS: u8 = 16;

/// The list of bit operations a symbolic mode stands for.
#[derive(Debug, Clone)]
pub(crate) struct Commands {
    cmds: Vec<BitCmd>,
}

impl Commands {
    fn parse(s: &str) -> Option<Commands> {
        let s = s.as_bytes();
        if s.is_empty() || s[0].is_ascii_digit() {
            return None;
        }
        // Zero umask: "+x" without a who means everyone.
        let mask: u32 = !0;
        let mut out = Commands { cmds: Vec::new() };
        let mut pos = 0;
        let mut equal_done = false;
        loop {
            let mut who = 0u32;
            while let Some(&c) = s.get(pos) {
                match c {
                    b'a' => who |= STANDARD,
                    b'u' => who |= IS_UID | RWXU,
                    b'g' => who |= IS_GID | RWXG,
                    b'o' => who |= RWXO,
                    _ => break,
                }
                pos += 1;
            }
            // One or more operators, each with its permission letters, until ',' or end.
            loop {
                let op = *s.get(pos)?;
                pos += 1;
                match op {
                    b'+' | b'-' => {}
                    b'=' => equal_done = false,
                    _ => return None,
                }
                who &= !IS_TXT;
                let mut perm = 0u32;
                let mut perm_x = 0u32;
                loop {
                    let b = s.get(pos).copied().unwrap_or(0);
                    match b {
                        b'r' => perm |= R_ALL,
                        b's' => {
                            if who == 0 || who & !RWXO != 0 {
                                perm |= IS_UID | IS_GID;
                            }
                        }
                        b't' => {
                            if who == 0 || who & !RWXO != 0 {
                                who |= IS_TXT;
                                perm |= IS_TXT;
                            }
                        }
                        b'w' => perm |= W_ALL,
                        b'X' => {
                            if op == b'+' {
                                perm_x = X_ALL;
                            }
                        }
                        b'x' => perm |= X_ALL,
                        b'u' | b'g' | b'o' => {
                            if perm != 0 {
                                out.add(op, who, perm, mask);
                                perm = 0;
                            }
                            if op == b'=' {
                                equal_done = true;
                            }
                            if perm_x != 0 {
                                out.add(b'X', who, perm_x, mask);
                                perm_x = 0;
                            }
                            out.add(b, who, u32::from(op), mask);
                        }
                        _ => {
                            if perm != 0 || (op == b'=' && !equal_done) {
                                if op == b'=' {
                                    equal_done = true;
                                }
                                out.add(op, who, perm, mask);
                            }
                            if perm_x != 0 {
                                out.add(b'X', who, perm_x, mask);
                            }
                            break;
                        }
                    }
                    pos += 1;
                }
                if pos >= s.len() {
                    out.compress();
                    return Some(out);
                }
                if s[pos] == b',' {
                    pos += 1;
                    break;
                }
            }
        }
    }

    fn add(&mut self, op: u8, who: u32, oparg: u32, mask: u32) {
        let mut c = BitCmd { cmd: op, cmd2: 0, bits: 0 };
        match op {
            b'=' | b'+' | b'-' | b'X' => {
                let mut op = op;
                if op == b'=' {
                    self.cmds.push(BitCmd {
                        cmd: b'-',
                        cmd2: 0,
                        bits: if who != 0 { who } else { STANDARD },
                    });
                    op = b'+';
                }
                c.cmd = op;
                c.bits = if who != 0 { who & oparg } else { mask & oparg };
            }
            _ => {
                // 'u', 'g', 'o': copy one class's bits to the classes in `who`.
                if who != 0 {
                    if who & 0o400 != 0 {
                        c.cmd2 |= CMD2_UBITS;
                    }
                    if who & 0o040 != 0 {
                        c.cmd2 |= CMD2_GBITS;
                    }
                    if who & 0o004 != 0 {
                        c.cmd2 |= CMD2_OBITS;
                    }
                    c.bits = !0;
                } else {
                    c.cmd2 = CMD2_UBITS | CMD2_GBITS | CMD2_OBITS;
                    c.bits = mask;
                }
                match oparg as u8 {
                    b'+' => c.cmd2 |= CMD2_SET,
                    b'-' => c.cmd2 |= CMD2_CLEAR,
                    _ => c.cmd2 |= CMD2_SET | CMD2_CLEAR,
                }
            }
        }
        self.cmds.push(c);
    }

    /// Merges runs of '+', '-' and 'X' into at most one of each (BSD's `compress_mode`).
    fn compress(&mut self) {
        let mut out = Vec::with_capacity(self.cmds.len());
        let mut i = 0;
        while i < self.cmds.len() {
            let c = self.cmds[i];
            if !matches!(c.cmd, b'+' | b'-' | b'X') {
                out.push(c);
                i += 1;
                continue;
            }
            let (mut set, mut clr, mut x) = (0u32, 0u32, 0u32);
            while i < self.cmds.len() {
                let c = self.cmds[i];
                match c.cmd {
                    b'-' => {
                        clr |= c.bits;
                        set &= !c.bits;
                        x &= !c.bits;
                    }
                    b'+' => {
                        set |= c.bits;
                        clr &= !c.bits;
                        x &= !c.bits;
                    }
                    b'X' => x |= c.bits & !set,
                    _ => break,
                }
                i += 1;
            }
            for (cmd, bits) in [(b'-', clr), (b'+', set), (b'X', x)] {
                if bits != 0 {
                    out.push(BitCmd { cmd, cmd2: 0, bits });
                }
            }
        }
        self.cmds = out;
    }

    fn apply(&self, st_mode: u32) -> u32 {
        let omode = st_mode & 0o7777;
        let is_dir = st_mode & 0o170000 == 0o040000;
        let mut newmode = omode;
        for c in &self.cmds {
            match c.cmd {
                b'u' => {
                    let v = (newmode & RWXU) >> 6;
                    copy_class(c, &mut newmode, v)
                }
                b'g' => {
                    let v = (newmode & RWXG) >> 3;
                    copy_class(c, &mut newmode, v)
                }
                b'o' => {
                    let v = newmode & RWXO;
                    copy_class(c, &mut newmode, v)
                }
                b'+' => newmode |= c.bits,
                b'-' => newmode &= !c.bits,
                b'X' if omode & X_ALL != 0 || is_dir => newmode |= c.bits,
                _ => {}
            }
        }
        newmode & 0o7777
    }
}

/// Applies a 'u', 'g' or 'o' command: copies `value` (one class's rwx bits) to the classes
/// the command names, clearing them first for '='.
fn copy_class(c: &BitCmd, newmode: &mut u32, value: u32) {
    if c.cmd2 & CMD2_CLEAR != 0 {
        let clr = if c.cmd2 & CMD2_SET != 0 { RWXO } else { value };
        if c.cmd2 & CMD2_UBITS != 0 {
            *newmode &= !((clr << 6) & c.bits);
        }
        if c.cmd2 & CMD2_GBITS != 0 {
            *newmode &= !((clr << 3) & c.bits);
        }
        if c.cmd2 & CMD2_OBITS != 0 {
            *newmode &= !(clr & c.bits);
        }
    }
    if c.cmd2 & CMD2_SET != 0 {
        if c.cmd2 & CMD2_UBITS != 0 {
            *newmode |= (value << 6) & c.bits;
        }
        if c.cmd2 & CMD2_GBITS != 0 {
            *newmode |= (value << 3) & c.bits;
        }
        if c.cmd2 & CMD2_OBITS != 0 {
            *newmode |= value & c.bits;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: u32 = 0o100000;
    const DIR: u32 = 0o040000;

    #[test]
    fn symbolic_table() {
        // (mode, starting st_mode, result) — chmod(1) semantics with a zero umask.
        let cases: &[(&str, u32, u32)] = &[
            ("u+x", FILE | 0o644, 0o744),
            ("+x", FILE | 0o644, 0o755),
            ("go-w", FILE | 0o666, 0o644),
            ("a=r", FILE | 0o777, 0o444),
            ("=rw,+X", FILE | 0o600, 0o666),
            ("=rw,+X", FILE | 0o700, 0o777),
            ("=rw,+X", DIR | 0o600, 0o777),
            ("+X", DIR | 0o644, 0o755),
            ("+X", FILE | 0o644, 0o644),
            ("u=rwx,go=rx", FILE, 0o755),
            ("u=rwx,go=u-w", FILE, 0o755),
            ("go=", FILE | 0o777, 0o700),
            ("g=u", FILE | 0o640, 0o660),
            ("u+s", FILE | 0o755, 0o4755),
            ("g+s", DIR | 0o755, 0o2755),
            ("+t", DIR | 0o777, 0o1777),
            ("o+t", DIR | 0o777, 0o777),
            ("u-x,g+w", FILE | 0o755, 0o675),
            ("a+rw-x", FILE | 0o711, 0o666),
        ];
        for (mode, start, want) in cases {
            let m = Mode::parse(mode).unwrap().compile().unwrap();
            assert_eq!(m.apply(*start), *want, "{mode} on {start:o}");
        }
    }

    #[test]
    fn no_panic_on_arbitrary_input() {
        let alphabet = b"ugoa+-=rwxXst,0179";
        let mut state: u64 = 42;
        for _ in 0..20_000 {
            let mut s = String::new();
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let mut bits = state;
            for _ in 0..(bits % 8) {
                bits /= 19;
                s.push(alphabet[(bits % alphabet.len() as u64) as usize] as char);
            }
            if let Ok(m) = Mode::parse(&s) {
                let _ = m.compile().unwrap().apply(FILE | 0o644);
            }
        }
    }

    #[test]
    fn parse_table() {
        let ok: &[(&str, Mode)] = &[
            ("755", Mode::Octal(0o755)),
            ("0644", Mode::Octal(0o644)),
            ("7777", Mode::Octal(0o7777)),
            ("0", Mode::Octal(0)),
            ("u+x", Mode::Symbolic("u+x".into())),
        ];
        for (s, want) in ok {
            assert_eq!(&Mode::parse(s).unwrap(), want, "{s}");
        }
        for bad in ["", "10000", "89", "u", "u+x,", "z+x", "u+q", "u=x,g"] {
            assert!(Mode::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        // A lone operator is a valid no-op in chmod(1).
        assert_eq!(Mode::parse("+").unwrap().compile().unwrap().apply(FILE | 0o640), 0o640);
    }
}

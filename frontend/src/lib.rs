//! The Dockerfile frontend: reads a Dockerfile the way BuildKit's Dockerfile frontend 1.x
//! does and hands out a typed, unexpanded model of it.
//!
//! Owns: the parser (directives, continuations, heredocs, flags, JSON/shell forms), the
//! shell-word lexer (`$VAR`, `${VAR:-x}`, `${VAR#pat}`...), the typed instruction model and
//! its per-instruction expansion rules, `.dockerignore` parsing and the build checks that
//! can be decided from the file alone.
//! Must not: touch the file system or the network, or know about storage.
//!
//! Entry point: [`parse`], then [`Command::expand`] per instruction at build time with a
//! [`shell::Lexer`] and the build-time variables.

pub mod dockerignore;
mod error;
pub mod instructions;
pub mod lint;
pub mod lower;
pub mod shell;
mod suggest;
pub mod syntax;

pub use error::{DockerfileError, LineIndex, Span};
pub use instructions::{
    Command, CommandLine, Dockerfile, ExpandError, Instruction, Stage, parse, parse_instruction,
};
pub use lint::{Warning, lint};

/// Lines as Go's `bufio.ScanLines` yields them.
pub(crate) fn syntax_lines(text: &str) -> impl Iterator<Item = &str> {
    syntax::scan_lines(text)
}

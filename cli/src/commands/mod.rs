//! One module per command.

pub mod build;
pub mod check;
pub mod debug;
pub mod debug_parse;
pub mod images;
pub mod store;

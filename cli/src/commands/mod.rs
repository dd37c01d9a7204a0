//! One module per command.

pub mod build;
pub mod builds;
pub mod check;
pub mod completion;
pub mod debug;
pub mod debug_parse;
pub mod history;
pub mod images;
pub mod inspect;
pub mod load;
pub mod login;
pub mod pull;
pub mod push;
pub mod rmi;
pub mod save;
pub mod store;
pub mod tag;
pub mod version;

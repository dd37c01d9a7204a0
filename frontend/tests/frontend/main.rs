//! Frontend behaviour beyond the BuildKit conformance data: error reports (golden files),
//! robustness against arbitrary input, build checks, the typed model and `.dockerignore`.

mod checks;
mod dockerignore;
mod errors;
mod model;
mod robustness;

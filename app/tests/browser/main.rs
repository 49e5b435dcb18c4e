//! The browser side, in headless Chromium against the real binary: the
//! console at `/ui` ([`console`]) and Swagger UI's "Authorize" ([`swagger`]).

#[path = "../running/mod.rs"]
#[allow(dead_code)]
mod running;

mod console;
mod swagger;
mod webdriver;

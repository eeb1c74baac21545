//! The outcome of an escape attempt: what got through and what was refused.
//!
//! Each attack runs several probes and reports all of them, so a failing
//! sandbox test says exactly which door was open.

use std::fmt::Display;

use crate::walship::storage::types::Error;

#[derive(Default)]
pub struct Probes {
    escapes: Vec<String>,
    denials: Vec<String>,
}

impl Probes {
    /// Records `attempt`: success is an escape (described by `describe`),
    /// failure a denial.
    pub fn check<T, E: Display>(
        &mut self,
        attempt: &str,
        result: Result<T, E>,
        describe: impl FnOnce(T) -> String,
    ) {
        match result {
            Ok(value) => self.escapes.push(format!("{attempt}: {}", describe(value))),
            Err(err) => self.denials.push(format!("{attempt}: {err}")),
        }
    }

    pub fn escaped(&mut self, what: String) {
        self.escapes.push(what);
    }

    pub fn held(&mut self, what: String) {
        self.denials.push(what);
    }

    /// The contract error the host's sandbox tests look for: `other` starting
    /// with "SANDBOX ESCAPED" if anything got through, else
    /// `permission-denied` starting with "sandbox held".
    pub fn verdict(self) -> Error {
        if self.escapes.is_empty() {
            Error::PermissionDenied(format!("sandbox held: {}", self.denials.join("; ")))
        } else {
            Error::Other(format!("SANDBOX ESCAPED: {}", self.escapes.join("; ")))
        }
    }
}

/// A number sent as the put's data (ASCII decimal), or `default` if the data
/// is empty or not a number.
pub fn number_from<T: std::str::FromStr>(data: &[u8], default: T) -> T {
    std::str::from_utf8(data)
        .ok()
        .map(str::trim)
        .and_then(|text| text.parse().ok())
        .unwrap_or(default)
}

/// The put's data as text, or `default` if it is empty or not UTF-8.
pub fn text_or(data: &[u8], default: &str) -> String {
    match std::str::from_utf8(data).map(str::trim) {
        Ok(text) if !text.is_empty() => text.to_string(),
        _ => default.to_string(),
    }
}

//! Turns `std::io` failures into the contract's errors.
//!
//! The error kind decides what the host does (a missing object is not a
//! failure for delete, an existing one is the expected outcome of a racing
//! create-only put), and the message is what the operator reads, so every
//! message says which operation touched which path.

use std::io;

use crate::walship::storage::types::Error;

/// Maps an I/O error to the contract's error, with `what` (the operation and
/// path, e.g. `reading /srv/archive/a`) leading the message.
pub fn from_io(what: &str, err: &io::Error) -> Error {
    let message = format!("{what}: {err}");
    match err.kind() {
        io::ErrorKind::NotFound => Error::NotFound(message),
        io::ErrorKind::AlreadyExists => Error::AlreadyExists(message),
        io::ErrorKind::PermissionDenied => Error::PermissionDenied(format!(
            "{message} (check that the user walship runs as may read and write the store's directory)"
        )),
        _ => Error::Other(message),
    }
}

/// `?`-friendly form of [`from_io`]: the description is built only on failure.
pub trait IoContext<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, Error>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|err| from_io(&what(), &err))
    }
}

/// A path that does not exist, or runs through a file where a directory
/// would have to be: either way, there is no object there.
pub fn is_missing(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

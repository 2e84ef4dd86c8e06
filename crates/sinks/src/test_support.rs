//! Helpers the unit tests of several kinds share.

use crate::Secrets;

/// Secrets from name and value pairs.
pub(crate) fn secrets(pairs: &[(&str, &str)]) -> Secrets {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

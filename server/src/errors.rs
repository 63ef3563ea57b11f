//! What a client is told when the store fails a request, or its account was disabled.

use papo_protocol::{ErrorCode, ErrorReply};
use tracing::warn;

use crate::store::StoreError;

/// The reply to a request that the store could not complete; none of them stored anything.
///
/// A full disk and a stopping server are said as such, so clients can tell the user; any
/// other failure is logged here and reaches the client only as `Internal`.
pub(crate) fn from_store(error: &StoreError) -> ErrorReply {
    match error {
        StoreError::StorageFull { .. } => ErrorReply::new(
            ErrorCode::StorageFull,
            "the server's disk is full, so nothing was stored; try again later (the server's administrator has been told)",
        ),
        StoreError::Stopped => {
            ErrorReply::new(ErrorCode::ShuttingDown, "the server is stopping; try again when it is back")
        }
        _ => {
            warn!(%error, "storage failure");
            ErrorReply::new(ErrorCode::Internal, "the server could not complete the request, and stored nothing; try again")
        }
    }
}

/// Why the live sessions of a deleted account are closed.
pub(crate) fn account_deleted() -> ErrorReply {
    ErrorReply::new(ErrorCode::InvalidToken, "the administrator deleted this account")
}

/// The reply to a login or resume of a disabled account, and the reason its live sessions
/// are closed with.
pub(crate) fn account_disabled() -> ErrorReply {
    ErrorReply::new(
        ErrorCode::AccountDisabled,
        "this account is disabled by the administrator; ask them to enable it again",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_disk_and_stopping_are_told_apart_from_other_failures() {
        let full = StoreError::StorageFull { dir: "/data".into(), free: 0, reserve: 1 };
        assert_eq!(from_store(&full).code, ErrorCode::StorageFull);
        assert_eq!(from_store(&StoreError::Stopped).code, ErrorCode::ShuttingDown);
        let corrupt = StoreError::Corrupt { key: "k".into(), reason: "r".into() };
        assert_eq!(from_store(&corrupt).code, ErrorCode::Internal);
        assert_eq!(from_store(&StoreError::NotStored("no".into())).code, ErrorCode::Internal);
    }
}

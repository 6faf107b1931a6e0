//! What bgswap may do again after a dropped SSH connection, once it has
//! reconnected (same target, same host key): the policy, pure. Reads and
//! state inspections are always safe to repeat; a compare-and-swap write is
//! safe because it checks first whether its earlier attempt landed; a
//! command is repeated only if it never started (the channel could not be
//! opened), since one that was cut may have run.

use super::host::HostError;

/// The reason of an error for a command whose channel never opened.
pub const NOT_STARTED: &str = "could not start ";

/// How many times a dropped connection is re-established before the host
/// counts as lost for the rest of the run.
pub const RECONNECT_ATTEMPTS: u32 = 2;

/// Whether an error means the connection itself failed (cut, reset, timed
/// out on the socket), as opposed to the host answering with a failure.
pub fn is_dropped(e: &HostError) -> bool {
    let text = match e {
        HostError::Timeout { what, .. } => return what.ends_with(super::ssh::NO_ANSWER),
        HostError::Other { reason, .. } | HostError::File { reason, .. } => reason.as_str(),
        HostError::NoStatus { .. } => return true,
        _ => return false,
    };
    if text.starts_with("not tried: ") {
        return false;
    }
    [
        "Timed out waiting on socket",
        "Unable to send",
        "Failure while",
        "Socket",
        "socket disconnect",
        "Connection reset",
        "connection abort",
        "Broken pipe",
        "Transport read",
        "Would block",
        "Unable to exchange encryption keys",
        "Unable to startup channel",
    ]
    .iter()
    .any(|m| text.contains(m))
}

/// Whether a failed command never started, so running it again cannot run
/// it twice.
pub fn never_started(e: &HostError) -> bool {
    matches!(e, HostError::Other { reason, .. } if reason.starts_with(NOT_STARTED))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn other(reason: &str) -> HostError {
        HostError::Other {
            host: "h".into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn dropped_connections_and_answers_are_told_apart() {
        assert!(is_dropped(&other(
            "running `systemctl start ui.service`: Unable to send FXP_OPEN*"
        )));
        assert!(is_dropped(&other(
            "could not start `cat x`: Failure while draining incoming flow"
        )));
        assert!(is_dropped(&other(
            "talking to `x`: Connection reset by peer (os error 104)"
        )));
        assert!(is_dropped(&HostError::NoStatus {
            host: "h".into(),
            cmd: "x".into(),
            signal: String::new(),
        }));
        // Answers, and a host already given up on, are not.
        assert!(!is_dropped(&other("cannot start SFTP: permission denied")));
        assert!(!is_dropped(&other(
            "not tried: the host stopped answering earlier in this run (Socket)"
        )));
        assert!(!is_dropped(&HostError::Timeout {
            host: "h".into(),
            what: "`sleep 100`".into(),
            secs: 5,
        }));
        assert!(is_dropped(&other(
            "cannot start SFTP: Unable to startup channel"
        )));
        assert!(never_started(&other(
            "could not start `x`: Unable to send channel-open"
        )));
        assert!(!never_started(&other("talking to `x`: Broken pipe")));
    }
}

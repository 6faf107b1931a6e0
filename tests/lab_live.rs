//! The switchover judged as the repository's users see it: real uWSGI in every
//! container, real PostgreSQL, Redis and RabbitMQ per role, workers on the
//! broker in effect, HTTP through the lab's inner HAProxy. Each answer's
//! identity endpoint says which colour served it, which data directory is
//! mounted in it, and which database, broker, search cluster and LDAP group it
//! uses right now (helpers in tests/common/live.rs).
//!
//! The users' view of a switchover and its rollback (every hostname reaches
//! the right copy right after `execute` and right after `rollback`, workers
//! on the new broker) is checked inside lab_execute's
//! `execute_matches_the_render_and_rollback_restores_every_byte`, on the same
//! run that checks the bytes: one execute + rollback proves both.

mod common;

use common::lab::{lab, unchanged};
use common::live::*;

#[test]
fn a_copy_answers_only_for_its_own_hostnames() {
    let Some((_l, _g)) = lab() else { return };
    unchanged();
    for (name, addr) in CONTAINERS {
        let (own, other) = if name.ends_with("blue") {
            (PROD_HOSTS[0], DEV_HOSTS[0])
        } else {
            (DEV_HOSTS[0], PROD_HOSTS[0])
        };
        let ok = eventually(20, || get(addr, 5000, own, "/ping"));
        assert_eq!(ok, (200, "OK".to_string()), "{name} /ping for {own}");
        let (status, _) = get(addr, 5000, other, "/ping").expect("answers");
        assert_eq!(status, 400, "{name} refuses {other} (APP_ALLOWED_HOSTS)");
    }
}

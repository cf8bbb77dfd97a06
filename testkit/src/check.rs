//! CHECK against state taken away behind a plugin's back: each part of an
//! attachment undone in turn, CHECK must fail naming it and change nothing, and
//! pass again once the part is put back. The CHECK tests of every plugin share it.

use crate::call::Output;

/// One part of an attachment: what CHECK must name once it is undone, how to undo
/// it, and how to put it back.
pub type Change<'a> = (&'a str, Box<dyn Fn() + 'a>, Box<dyn Fn() + 'a>);

/// The message of a failed CHECK (exit 1, one error object, whatever its code).
pub fn check_failure(out: &Output) -> String {
    assert_eq!(
        out.code, 1,
        "CHECK passed: stdout {} stderr {}",
        out.stdout, out.stderr
    );
    out.json()["msg"].as_str().unwrap_or_default().to_string()
}

/// Each change undone in turn: `check` fails naming it and leaves `state` as it
/// found it; put back, `check` passes again.
pub fn each_undone_fails_check(
    check: &dyn Fn() -> Output,
    state: &dyn Fn() -> String,
    changes: &[Change],
) {
    for (what, undo, redo) in changes {
        undo();
        let before = state();
        let msg = check_failure(&check());
        assert!(msg.contains(what), "{what}: CHECK said {msg:?}");
        assert_eq!(state(), before, "{what}: CHECK changed the state");
        redo();
        check().expect_success();
    }
}

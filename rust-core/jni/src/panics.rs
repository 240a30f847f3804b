//! Panics inside the library: the hook that records where they happened, and [`catch`],
//! which [`crate::bridge::guard`] runs every entry point's body in.
//!
//! Inside an entry point the hook logs one line and keeps the backtrace on the thread, and
//! `catch` hands it over with the payload, so the panic's `AutotuneNativeException` carries
//! the native frames (the shim logs that exception with its stack trace). A panic anywhere
//! else (a thread of our own) is logged with its backtrace, then goes on to the hook that was
//! there before (Rust's default prints it to stderr): nothing is swallowed.

use std::any::Any;
use std::backtrace::{Backtrace, BacktraceStatus};
use std::cell::{Cell, RefCell};
use std::fmt::{self, Write as _};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

/// Native frames kept in a trace; the rest are counted.
const MAX_FRAMES: usize = 64;

thread_local! {
    /// This thread runs inside [`catch`].
    static CATCHING: Cell<bool> = const { Cell::new(false) };
    /// The backtrace of this thread's last panic inside [`catch`], until `catch` takes it.
    static BACKTRACE: RefCell<Option<Backtrace>> = const { RefCell::new(None) };
}

/// Installs the hook, once per loaded library, in front of the one already there.
pub fn install() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !hook(info) {
                previous(info);
            }
        }));
    });
}

/// Logs the panic (`info` is the hook's `PanicHookInfo`, unnamed to keep Rust 1.75);
/// returns whether it is taken care of, i.e. [`catch`] will turn it into an exception.
fn hook(info: &dyn fmt::Display) -> bool {
    // `try_with`: a panic while the thread's locals are being destroyed must not panic again.
    let caught = CATCHING.try_with(Cell::get).unwrap_or(false);
    let backtrace = Backtrace::force_capture();
    if caught {
        // The default hook would print to stderr (the TaskManager's .out file): one log line
        // instead; the frames go with the exception.
        log::error!("AUTOTUNE native panic: {info}");
        let _ = BACKTRACE.try_with(|slot| *slot.borrow_mut() = Some(backtrace));
    } else {
        // One record, one line: the log bridge escapes the frames' line breaks.
        log::error!(
            "AUTOTUNE native panic: {info}{}",
            java_style_frames(&backtrace)
        );
    }
    caught
}

/// A panic caught by [`catch`]: its message and, when the hook saw it, where it happened.
#[derive(Debug)]
pub struct Panic {
    pub message: String,
    /// `\n\tat frame(location)` per native frame, innermost first ("" when unknown).
    pub frames: String,
}

impl fmt::Display for Panic {
    /// `native panic: <message>` and the frames on the following lines, the way Java
    /// prints a stack trace, so a logged exception shows them above its Java frames.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "native panic: {}{}", self.message, self.frames)
    }
}

/// Runs `body`, turning a panic into a [`Panic`] that carries its backtrace.
pub fn catch<R>(body: impl FnOnce() -> R) -> Result<R, Panic> {
    let outer = CATCHING.replace(true);
    let result = panic::catch_unwind(AssertUnwindSafe(body));
    CATCHING.set(outer);
    // Taken either way, so a panic caught deeper down never lends its frames to a later one.
    let backtrace = BACKTRACE.take();
    result.map_err(|payload| Panic {
        message: payload_message(payload.as_ref()).to_owned(),
        frames: backtrace
            .as_ref()
            .map(java_style_frames)
            .unwrap_or_default(),
    })
}

fn payload_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

fn java_style_frames(backtrace: &Backtrace) -> String {
    if backtrace.status() != BacktraceStatus::Captured {
        return String::new();
    }
    format_frames(&backtrace.to_string())
}

/// One symbol of a backtrace: its name and, with debug info, `file:line:column`.
#[derive(Debug, PartialEq)]
struct Frame<'a> {
    name: &'a str,
    at: Option<&'a str>,
}

/// Reads the text of a captured [`Backtrace`] (`   3: name` then `at file:line:col`; an
/// inlined symbol is a line of its own without a number).
fn parse(text: &str) -> Vec<Frame<'_>> {
    let mut frames: Vec<Frame> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with("note: ") {
            continue;
        }
        if let Some(at) = line.strip_prefix("at ") {
            if let Some(frame) = frames.last_mut().filter(|f| f.at.is_none()) {
                frame.at = Some(at.trim());
            }
            continue;
        }
        let name = match line.split_once(": ") {
            Some((n, name)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => line,
        };
        frames.push(Frame {
            name: name.trim(),
            at: None,
        });
    }
    frames
}

/// The standard library's frames: capturing the backtrace, the panic machinery, the library
/// function that panicked for the caller (its message says so), `catch_unwind`, closures'
/// calls. Only the library's own frames say where a panic comes from. (With line tables, an
/// inlined frame has a bare name, but its place is in the toolchain's sources.)
fn is_std(frame: &Frame<'_>) -> bool {
    const PREFIXES: [&str; 10] = [
        "std::",
        "core::",
        "alloc::",
        "<std::",
        "<core::",
        "<alloc::",
        "__rustc::",
        "__rust_try",
        "rust_begin_unwind",
        "rust_panic",
    ];
    PREFIXES.iter().any(|p| frame.name.starts_with(p))
        || frame.at.is_some_and(|at| at.starts_with("/rustc/"))
}

/// Where a panic enters the standard library: never inlined, so always named in full.
/// Everything above it is the machinery and this module's hook.
fn is_panic_entry(frame: &Frame<'_>) -> bool {
    frame.name.starts_with("core::panicking::") || frame.name.ends_with("rust_begin_unwind")
}

/// This module's hook, when no panic entry is in the trace.
fn is_hook(frame: &Frame<'_>) -> bool {
    frame.name.starts_with("flink_autotune::panics::hook")
        || frame.name.starts_with("flink_autotune::panics::install")
}

/// An exported entry point (`Java_dev_flinkautotune_*`, `JNI_OnLoad`), not a closure in it:
/// below it are the JVM's frames, which the Java stack trace shows better.
fn is_entry_point(name: &str) -> bool {
    let last = name.rsplit("::").next().unwrap_or(name);
    last.starts_with("Java_dev_flinkautotune_") || last == "JNI_OnLoad"
}

/// The frames from where the panic happened down to the entry point it happened in, as
/// Java prints frames (`\n\tat name(file:line:col)`), without the standard library's, at
/// most [`MAX_FRAMES`]. A trace of another shape is kept whole.
fn format_frames(text: &str) -> String {
    let all = parse(text);
    let start = all.iter().position(is_panic_entry).map_or_else(
        || all.iter().take_while(|f| is_hook(f) || is_std(f)).count(),
        |entry| entry + 1,
    );
    let mut frames: Vec<&Frame> = all[start..].iter().collect();
    if let Some(entry) = frames.iter().position(|f| is_entry_point(f.name)) {
        frames.truncate(entry + 1);
    }
    frames.retain(|f| !is_std(f));
    if frames.is_empty() {
        frames = all.iter().collect();
    }
    let mut out = String::new();
    for frame in frames.iter().take(MAX_FRAMES) {
        let _ = write!(
            out,
            "\n\tat {}({})",
            frame.name,
            frame.at.unwrap_or("Unknown Source")
        );
    }
    if frames.len() > MAX_FRAMES {
        let _ = write!(
            out,
            "\n\t... {} more native frames",
            frames.len() - MAX_FRAMES
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `Backtrace`'s `Display` prints for a panic in a debug build (paths shortened).
    const DEBUG_TEXT: &str = "   0: flink_autotune::panics::install::{{closure}}
             at ./src/panics.rs:31:38
   1: <alloc::boxed::Box<dyn for<'a, 'b> core::ops::function::Fn<(&'a std::panic::PanicHookInfo<'b>,), Output = ()>> as core::ops::function::Fn<(&std::panic::PanicHookInfo,)>>::call
             at /rustc/x/library/alloc/src/boxed.rs:2254:9
   2: std::panicking::panic_with_hook
             at /rustc/x/library/std/src/panicking.rs:833:13
   3: __rustc::rust_begin_unwind
             at /rustc/x/library/std/src/panicking.rs:689:5
   4: core::panicking::panic_fmt
             at /rustc/x/library/core/src/panicking.rs:80:14
   5: core::option::unwrap_failed
   6: flink_autotune::panic_on_purpose
             at ./src/lib.rs:300:5
   7: flink_autotune::Java_dev_flinkautotune_AutotuneNative_panicForTesting::{{closure}}
             at ./src/lib.rs:290:9
      flink_autotune::bridge::guard::{{closure}}
             at ./src/bridge.rs:80:40
   8: <core::panic::unwind_safe::AssertUnwindSafe<F> as core::ops::function::FnOnce<()>>::call_once
             at /rustc/x/library/core/src/panic/unwind_safe.rs:274:9
   9: __rust_try
  10: std::panic::catch_unwind
             at /rustc/x/library/std/src/panic.rs:359:14
  11: flink_autotune::panics::catch
             at ./src/panics.rs:80:18
  12: flink_autotune::bridge::guard
             at ./src/bridge.rs:80:11
  13: flink_autotune::Java_dev_flinkautotune_AutotuneNative_panicForTesting
             at ./src/lib.rs:287:5
  14: <unknown>
  15: JVM_handle_linux_signal
";

    #[test]
    fn frames_run_from_the_panic_to_the_entry_point_as_java_prints_them() {
        assert_eq!(
            format_frames(DEBUG_TEXT),
            "\n\tat flink_autotune::panic_on_purpose(./src/lib.rs:300:5)\
             \n\tat flink_autotune::Java_dev_flinkautotune_AutotuneNative_panicForTesting::{{closure}}(./src/lib.rs:290:9)\
             \n\tat flink_autotune::bridge::guard::{{closure}}(./src/bridge.rs:80:40)\
             \n\tat flink_autotune::panics::catch(./src/panics.rs:80:18)\
             \n\tat flink_autotune::bridge::guard(./src/bridge.rs:80:11)\
             \n\tat flink_autotune::Java_dev_flinkautotune_AutotuneNative_panicForTesting(./src/lib.rs:287:5)"
        );
    }

    #[test]
    fn a_stripped_release_library_still_names_its_frames() {
        let text = "   0: flink_autotune::panics::hook
   1: std::panicking::panic_with_hook
   2: core::panicking::panic_fmt
   3: flink_autotune::reporter::Reporter::report
   4: Java_dev_flinkautotune_AutotuneNative_report
   5: <unknown>
";
        assert_eq!(
            format_frames(text),
            "\n\tat flink_autotune::reporter::Reporter::report(Unknown Source)\
             \n\tat Java_dev_flinkautotune_AutotuneNative_report(Unknown Source)"
        );
    }

    #[test]
    fn with_line_tables_inlined_frames_have_bare_names_and_are_told_by_their_place() {
        // A release library built with `debug = "line-tables-only"`.
        let text = "   0: <std::backtrace::Backtrace>::force_capture
   1: hook
             at ./src/panics.rs:45:21
      {closure#0}
             at ./src/panics.rs:33:17
      <alloc::boxed::Box<dyn for<'a, 'b> core::ops::function::Fn<(&'a std::panic::PanicHookInfo<'b>,), Output = ()>> as core::ops::function::Fn<(&std::panic::PanicHookInfo,)>>::call
             at /rustc/x/library/alloc/src/boxed.rs:2254:9
   2: std::panicking::panic_with_hook
             at /rustc/x/library/std/src/panicking.rs:833:13
   3: __rustc::rust_begin_unwind
   4: core::panicking::panic_fmt
             at /rustc/x/library/core/src/panicking.rs:80:14
   5: flink_autotune::panic_on_purpose
             at ./src/lib.rs:298:5
   6: {closure#0}
             at ./src/lib.rs:291:9
      call_once<core::result::Result<(), flink_autotune::bridge::Error>>
             at /rustc/x/library/core/src/panic/unwind_safe.rs:274:9
      guard<()>
             at ./src/bridge.rs:68:11
      Java_dev_flinkautotune_AutotuneNative_panicForTesting
             at ./src/lib.rs:289:5
   7: <unknown>
";
        assert_eq!(
            format_frames(text),
            "\n\tat flink_autotune::panic_on_purpose(./src/lib.rs:298:5)\
             \n\tat {closure#0}(./src/lib.rs:291:9)\
             \n\tat guard<()>(./src/bridge.rs:68:11)\
             \n\tat Java_dev_flinkautotune_AutotuneNative_panicForTesting(./src/lib.rs:289:5)"
        );
    }

    #[test]
    fn unknown_shapes_keep_every_frame_and_long_traces_are_cut() {
        // Only the standard library's frames: nothing to cut at, so nothing is cut.
        let text = "   0: std::panicking::panic_with_hook\n   1: core::panicking::panic_fmt\n";
        assert_eq!(
            format_frames(text),
            "\n\tat std::panicking::panic_with_hook(Unknown Source)\
             \n\tat core::panicking::panic_fmt(Unknown Source)"
        );
        let long: String = (0..100).map(|i| format!("{i:4}: deep::f{i}\n")).collect();
        let out = format_frames(&long);
        assert_eq!(out.matches("\n\tat ").count(), MAX_FRAMES);
        assert!(out.ends_with("\n\t... 36 more native frames"), "{out}");
        assert_eq!(format_frames(""), "");
    }

    #[test]
    fn a_caught_panic_carries_its_message_and_frames() {
        install();
        #[inline(never)]
        fn fails_here() -> u32 {
            panic!("on purpose {}", 7)
        }
        let panic = catch(fails_here).unwrap_err();
        assert_eq!(panic.message, "on purpose 7");
        assert!(panic
            .to_string()
            .starts_with("native panic: on purpose 7\n\tat "));
        assert!(panic.frames.contains("fails_here"), "{}", panic.frames);
        assert!(!panic.frames.contains("panics::hook"), "{}", panic.frames);
        // Nothing is left behind for the next call.
        assert_eq!(catch(|| 5).unwrap(), 5);
        assert!(BACKTRACE.with(|b| b.borrow().is_none()));
    }

    #[test]
    fn only_a_panic_inside_catch_is_kept_from_the_previous_hook() {
        // Outside `catch` (a thread of our own): logged, then the previous hook has it too.
        assert!(!hook(&"outside"));
        assert!(BACKTRACE.with(|b| b.borrow().is_none()));
        // Inside: the backtrace waits for `catch`, the previous hook is not called.
        CATCHING.set(true);
        let taken = hook(&"inside");
        CATCHING.set(false);
        assert!(taken);
        assert!(BACKTRACE.take().is_some());
    }
}

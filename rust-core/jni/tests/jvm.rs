//! The JNI entry points, called from a real JVM (started in this process with
//! `-Xcheck:jni`) through the shim's own `AutotuneNative` class, with the release of the
//! library loaded by `System.load` exactly as the plugin does.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use jni::objects::{JObject, JObjectArray, JString, JValue, JValueOwned};
use jni::{InitArgsBuilder, JNIEnv, JNIVersion, JavaVM};

const NATIVE: &str = "dev/flinkautotune/AutotuneNative";
const OPEN_SIG: &str =
    "([Ljava/lang/String;[Ljava/lang/String;Ljava/lang/String;Ljava/lang/String;)J";
const REGISTER_SIG: &str =
    "(JI[Ljava/lang/String;[Ljava/lang/String;Ljava/lang/String;Ljava/lang/String;I)Z";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The cdylib cargo built next to this test binary.
fn library_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let name = format!(
        "{}flink_autotune{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    [deps.join(&name), deps.parent().unwrap().join(&name)]
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("cargo did not build {name} next to {}", deps.display()))
}

/// Compiles the shim classes the library needs (they have no dependencies) plus the harness.
fn compile_classes() -> PathBuf {
    let root = repo_root();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("jni-test-classes");
    std::fs::create_dir_all(&out).unwrap();
    let shim = root.join("java-shim/src/main/java/dev/flinkautotune");
    let status = Command::new("javac")
        .arg("-d")
        .arg(&out)
        .arg(shim.join("AutotuneNative.java"))
        .arg(shim.join("AutotuneNativeException.java"))
        .arg(shim.join("NativeLog.java"))
        .arg(root.join("rust-core/jni/tests/java/dev/flinkautotune/JniHarness.java"))
        .status()
        .expect("javac must be installed to run the JNI tests");
    assert!(status.success(), "javac failed");
    out
}

fn jvm() -> &'static JavaVM {
    static JVM: OnceLock<JavaVM> = OnceLock::new();
    JVM.get_or_init(|| {
        let classes = compile_classes();
        let args = InitArgsBuilder::new()
            .version(JNIVersion::V8)
            .option(format!("-Djava.class.path={}", classes.display()))
            .option("-Xcheck:jni")
            .build()
            .unwrap();
        let vm = JavaVM::new(args).expect("start an in-process JVM");
        {
            let mut env = vm.attach_current_thread().unwrap();
            let path = env.new_string(library_path().to_str().unwrap()).unwrap();
            call_static(
                &mut env,
                "dev/flinkautotune/JniHarness",
                "load",
                "(Ljava/lang/String;)V",
                &[JValue::Object(&path)],
            )
            .expect("System.load of the library");
        }
        vm
    })
}

/// A Java exception, as "class: message".
type Thrown = String;

fn call_static<'l>(
    env: &mut JNIEnv<'l>,
    class: &str,
    name: &str,
    sig: &str,
    args: &[JValue],
) -> Result<JValueOwned<'l>, Thrown> {
    match env.call_static_method(class, name, sig, args) {
        Ok(value) if !env.exception_check().unwrap() => Ok(value),
        _ => {
            let throwable = env.exception_occurred().unwrap();
            env.exception_clear().unwrap();
            let class = env
                .call_method(&throwable, "getClass", "()Ljava/lang/Class;", &[])
                .unwrap()
                .l()
                .unwrap();
            let class_name: JString = env
                .call_method(&class, "getName", "()Ljava/lang/String;", &[])
                .unwrap()
                .l()
                .unwrap()
                .into();
            let message: JString = env
                .call_method(&throwable, "getMessage", "()Ljava/lang/String;", &[])
                .unwrap()
                .l()
                .unwrap()
                .into();
            let class_name: String = env.get_string(&class_name).unwrap().into();
            let message: String = if message.is_null() {
                String::new()
            } else {
                env.get_string(&message).unwrap().into()
            };
            Err(format!("{class_name}: {message}"))
        }
    }
}

fn string_array<'l>(env: &mut JNIEnv<'l>, items: &[&str]) -> JObjectArray<'l> {
    let array = env
        .new_object_array(items.len() as i32, "java/lang/String", JObject::null())
        .unwrap();
    for (i, item) in items.iter().enumerate() {
        let s = env.new_string(item).unwrap();
        env.set_object_array_element(&array, i as i32, s).unwrap();
    }
    array
}

fn logs_in_frame(env: &mut JNIEnv) -> String {
    let s: JString = env
        .call_static_method(
            "dev/flinkautotune/JniHarness",
            "logs",
            "()Ljava/lang/String;",
            &[],
        )
        .unwrap()
        .l()
        .unwrap()
        .into();
    env.get_string(&s).unwrap().into()
}

fn open_in_frame(env: &mut JNIEnv, options: &[(&str, &str)]) -> Result<i64, Thrown> {
    let keys: Vec<&str> = options.iter().map(|(k, _)| *k).collect();
    let values: Vec<&str> = options.iter().map(|(_, v)| *v).collect();
    let keys = string_array(env, &keys);
    let values = string_array(env, &values);
    let version = env.new_string("test").unwrap();
    let platform = env.new_string("linux-x86_64").unwrap();
    let args = [
        JValue::Object(&keys),
        JValue::Object(&values),
        JValue::Object(&version),
        JValue::Object(&platform),
    ];
    call_static(env, NATIVE, "open", OPEN_SIG, &args).map(|v| v.j().unwrap())
}

fn register_in_frame(
    env: &mut JNIEnv,
    handle: i64,
    slot: i32,
    vars: &[(&str, &str)],
    scope: Option<&str>,
    name: &str,
    kind: i32,
) -> Result<bool, Thrown> {
    let keys: Vec<&str> = vars.iter().map(|(k, _)| *k).collect();
    let values: Vec<&str> = vars.iter().map(|(_, v)| *v).collect();
    let keys = string_array(env, &keys);
    let values = string_array(env, &values);
    let scope: JObject = match scope {
        Some(s) => env.new_string(s).unwrap().into(),
        None => JObject::null(),
    };
    let name = env.new_string(name).unwrap();
    let args = [
        JValue::Long(handle),
        JValue::Int(slot),
        JValue::Object(&keys),
        JValue::Object(&values),
        JValue::Object(&scope),
        JValue::Object(&name),
        JValue::Int(kind),
    ];
    call_static(env, NATIVE, "register", REGISTER_SIG, &args).map(|v| v.z().unwrap())
}

/// One round; returns the sampling request, if any (see `AutotuneNative.report`).
fn report_in_frame(
    env: &mut JNIEnv,
    handle: i64,
    values: &[f64],
    count: i32,
) -> Result<Option<Vec<String>>, Thrown> {
    let array = env.new_double_array(values.len() as i32).unwrap();
    env.set_double_array_region(&array, 0, values).unwrap();
    let args = [
        JValue::Long(handle),
        JValue::Object(&array),
        JValue::Int(count),
        JValue::Long(40_000),
        JValue::Long(42_000),
        JValue::Int(3),
    ];
    let request = call_static(env, NATIVE, "report", REPORT_SIG, &args)?
        .l()
        .unwrap();
    if request.is_null() {
        return Ok(None);
    }
    let request = JObjectArray::from(request);
    let len = env.get_array_length(&request).unwrap();
    Ok(Some(
        (0..len)
            .map(|i| {
                let s = JString::from(env.get_object_array_element(&request, i).unwrap());
                env.get_string(&s).unwrap().into()
            })
            .collect(),
    ))
}

const REPORT_SIG: &str = "(J[DIJJI)[Ljava/lang/String;";

/// Runs a helper inside its own JNI local frame, so the test thread (attached, with no Java
/// frame of its own) never piles up local references.
fn framed<T>(env: &mut JNIEnv, f: impl FnOnce(&mut JNIEnv) -> T) -> T {
    env.with_local_frame(512, |env| -> Result<T, jni::errors::Error> { Ok(f(env)) })
        .unwrap()
}

fn open(env: &mut JNIEnv, options: &[(&str, &str)]) -> Result<i64, Thrown> {
    framed(env, |env| open_in_frame(env, options))
}

fn register(
    env: &mut JNIEnv,
    handle: i64,
    slot: i32,
    vars: &[(&str, &str)],
    scope: Option<&str>,
    name: &str,
    kind: i32,
) -> Result<bool, Thrown> {
    framed(env, |env| {
        register_in_frame(env, handle, slot, vars, scope, name, kind)
    })
}

fn report(
    env: &mut JNIEnv,
    handle: i64,
    values: &[f64],
    count: i32,
) -> Result<Option<Vec<String>>, Thrown> {
    framed(env, |env| report_in_frame(env, handle, values, count))
}

fn logs(env: &mut JNIEnv) -> String {
    framed(env, logs_in_frame)
}

fn task_vars(subtask: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("<host>", "127.0.0.1"),
        ("<tm_id>", "tm-1"),
        ("<job_id>", "0f0e0d0c0b0a09080706050403020100"),
        ("<job_name>", "jni-test-job"),
        ("<task_id>", "cbc357ccb763df2852fee8c4fc7d55f2"),
        ("<task_name>", "Work -> Sink"),
        ("<subtask_index>", subtask),
    ]
}

#[test]
fn a_reporter_lives_registers_reports_and_logs_through_java() {
    let mut env = jvm().attach_current_thread().unwrap();
    let handle = open(
        &mut env,
        &[
            ("summary-interval", "1 min"),
            ("mode", "sideways"),
            ("interval", "10 SECONDS"),
        ],
    )
    .unwrap();
    assert_ne!(handle, 0);
    // A bad option is reported in the Java log, and the reporter still opens.
    assert!(logs(&mut env).contains("AUTOTUNE CONFIG metrics.reporter.autotune.mode: 'sideways'"));

    assert_eq!(
        register(
            &mut env,
            handle,
            0,
            &task_vars("0"),
            Some("taskmanager.job.task"),
            "busyTimeMsPerSecond",
            3
        ),
        Ok(true)
    );
    assert_eq!(
        register(
            &mut env,
            handle,
            1,
            &task_vars("1"),
            Some("taskmanager.job.task"),
            "busyTimeMsPerSecond",
            3
        ),
        Ok(true)
    );
    // User metrics are not tracked: the shim will forget them.
    assert_eq!(
        register(
            &mut env,
            handle,
            2,
            &task_vars("0"),
            Some("taskmanager.job.task.operator.mine"),
            "hits",
            1
        ),
        Ok(false)
    );
    // No logical scope: the variables and the name decide.
    assert_eq!(
        register(
            &mut env,
            handle,
            2,
            &[("<tm_id>", "tm-1")],
            None,
            "Status.JVM.CPU.Time",
            3
        ),
        Ok(true)
    );

    report(&mut env, handle, &[950.0, 1000.0, f64::NAN], 3).unwrap();
    let lines = logs(&mut env);
    assert!(
        lines.contains("AUTOTUNE START plugin=test native="),
        "{lines}"
    );
    assert!(
        lines.contains("role=taskmanager platform=linux-x86_64 interval=10s mode=recommend"),
        "{lines}"
    );
    assert!(
        lines.contains("vertex \"Work -> Sink\" (cbc357ccb763df2852fee8c4fc7d55f2) subtasks=[0-1] busy=1000ms/s"),
        "{lines}"
    );
    assert!(
        lines.contains("report-cost=42us read-cost=40us values=3"),
        "{lines}"
    );
    // Records arrive at INFO (3) from the reporter module.
    assert!(
        lines
            .lines()
            .any(|l| l.starts_with("3 flink_autotune::reporter AUTOTUNE STATUS")),
        "{lines}"
    );

    call_static(
        &mut env,
        NATIVE,
        "unregister",
        "(JI)V",
        &[JValue::Long(handle), JValue::Int(1)],
    )
    .unwrap();
    call_static(&mut env, NATIVE, "close", "(J)V", &[JValue::Long(handle)]).unwrap();
    assert!(logs(&mut env).contains("AUTOTUNE STOP role=taskmanager rounds=1 tracked=2"));
}

/// A saturated vertex is asked to be sampled once per decision; what the shim sampled comes
/// back as the published profiles, and a vertex without task threads is said once.
#[test]
fn a_saturated_vertex_is_sampled_and_its_profile_published() {
    let mut env = jvm().attach_current_thread().unwrap();
    let handle = open(&mut env, &[("flamegraph-samples", "20")]).unwrap();
    register(
        &mut env,
        handle,
        0,
        &task_vars("0"),
        Some("taskmanager.job.task"),
        "busyTimeMsPerSecond",
        3,
    )
    .unwrap();
    let requests: Vec<Option<Vec<String>>> = (0..4)
        .map(|_| report(&mut env, handle, &[900.0], 1).unwrap())
        .collect();
    assert_eq!(
        requests[..2],
        [None, None],
        "too few rounds to call it saturated"
    );
    let request = requests[2]
        .clone()
        .expect("sampling requested at the third round");
    assert_eq!(
        request,
        [
            "20",
            "30",
            "256",
            "0f0e0d0c0b0a09080706050403020100",
            "cbc357ccb763df2852fee8c4fc7d55f2",
            "Work -> Sink",
            "Work -> Sink ("
        ]
    );
    assert_eq!(requests[3], None, "once per decision");

    let profiles = |env: &mut JNIEnv| -> Option<String> {
        framed(env, |env| {
            let json = call_static(
                env,
                NATIVE,
                "profiles",
                "(J)Ljava/lang/String;",
                &[JValue::Long(handle)],
            )
            .unwrap()
            .l()
            .unwrap();
            (!json.is_null()).then(|| env.get_string(&JString::from(json)).unwrap().into())
        })
    };
    assert_eq!(profiles(&mut env), None);
    let sample = |env: &mut JNIEnv, stacks: &[&str], threads: i32| {
        framed(env, |env| {
            let job = env.new_string("0f0e0d0c0b0a09080706050403020100").unwrap();
            let vertex = env.new_string("cbc357ccb763df2852fee8c4fc7d55f2").unwrap();
            let name = env.new_string("Work -> Sink").unwrap();
            let stacks = string_array(env, stacks);
            let args = [
                JValue::Long(handle),
                JValue::Object(&job),
                JValue::Object(&vertex),
                JValue::Object(&name),
                JValue::Object(&stacks),
                JValue::Int(threads),
                JValue::Long(3_000_000),
                JValue::Long(200_000),
            ];
            call_static(env, NATIVE, "profile", PROFILE_SIG, &args).unwrap();
        })
    };
    sample(&mut env, &[], 0);
    sample(&mut env, &[], 0);
    let said = logs(&mut env)
        .matches("AUTOTUNE FLAMEGRAPH vertex \"Work -> Sink\" (cbc357ccb763df2852fee8c4fc7d55f2) of job 0f0e0d0c0b0a09080706050403020100 not sampled here")
        .count();
    assert_eq!(said, 1);
    sample(
        &mut env,
        &["java.lang.Thread.run;dev.example.Work.spin"; 3],
        1,
    );
    let json = profiles(&mut env).expect("a profile once sampled");
    assert!(json.contains("\"dev.example.Work.spin\""), "{json}");
    assert!(
        json.contains("\"samples\":3") && json.contains("\"sampling_max_us\":200"),
        "{json}"
    );
    call_static(&mut env, NATIVE, "close", "(J)V", &[JValue::Long(handle)]).unwrap();
}

const PROFILE_SIG: &str =
    "(JLjava/lang/String;Ljava/lang/String;Ljava/lang/String;[Ljava/lang/String;IJJ)V";

/// A vertex named to forge a line cannot: the record reaches Java as one line, escaped.
#[test]
fn a_hostile_vertex_name_cannot_break_a_log_record_into_lines() {
    let mut env = jvm().attach_current_thread().unwrap();
    let handle = open(&mut env, &[]).unwrap();
    let vars = [
        ("<tm_id>", "tm-1"),
        ("<job_id>", "0f0e0d0c0b0a09080706050403020100"),
        ("<job_name>", "evil\"job"),
        ("<task_id>", "cbc357ccb763df2852fee8c4fc7d55f2"),
        ("<task_name>", "Work\nAUTOTUNE AT101 SCALE_UP forged"),
        ("<subtask_index>", "0"),
    ];
    register(
        &mut env,
        handle,
        0,
        &vars,
        Some("taskmanager.job.task"),
        "busyTimeMsPerSecond",
        3,
    )
    .unwrap();
    report(&mut env, handle, &[10.0], 1).unwrap();
    let lines = logs(&mut env);
    assert!(
        lines.contains("job \"evil\\\"job\" (0f0e0d0c0b0a09080706050403020100): vertex \"Work\\nAUTOTUNE AT101 SCALE_UP forged\""),
        "{lines}"
    );
    assert!(!lines
        .lines()
        .any(|l| l.contains("AUTOTUNE AT101 SCALE_UP forged") && !l.contains("STATUS")));
    call_static(&mut env, NATIVE, "close", "(J)V", &[JValue::Long(handle)]).unwrap();
}

/// What only Java can send (lone surrogates, NULs), huge strings, NaN and infinities, counts
/// beyond the array: refused with a reason or taken, never a panic, never a crash.
#[test]
fn every_entry_point_takes_hostile_input() {
    let mut env = jvm().attach_current_thread().unwrap();
    // The log is the JVM's, shared with the other tests: count what this one adds (the
    // panics other tests provoke at the same time all say "boom").
    let panics = |env: &mut JNIEnv| {
        logs(env)
            .lines()
            .filter(|l| l.contains("native panic") && !l.contains("boom"))
            .count()
    };
    let before = panics(&mut env);
    let calls = framed(&mut env, |env| {
        call_static(
            env,
            "dev/flinkautotune/JniHarness",
            "hostileCalls",
            "()I",
            &[],
        )
        .map(|v| v.i().unwrap())
    });
    assert!(matches!(calls, Ok(n) if n > 30), "{calls:?}");
    assert_eq!(panics(&mut env), before, "{}", logs(&mut env));
}

#[test]
fn a_panic_becomes_the_shims_exception_and_the_library_keeps_working() {
    let mut env = jvm().attach_current_thread().unwrap();
    let message = env.new_string("boom for the test").unwrap();
    let thrown = call_static(
        &mut env,
        "dev/flinkautotune/JniHarness",
        "panic",
        "(Ljava/lang/String;)V",
        &[JValue::Object(&message)],
    );
    assert_eq!(
        thrown.unwrap_err().lines().next().unwrap(),
        "dev.flinkautotune.AutotuneNativeException: native panic: boom for the test"
    );
    // The panic hook sent the panic to the Java log instead of stderr.
    assert!(logs(&mut env).contains("AUTOTUNE native panic"));
    // The library still answers.
    let handle = open(&mut env, &[]).unwrap();
    call_static(&mut env, NATIVE, "close", "(J)V", &[JValue::Long(handle)]).unwrap();
}

/// The shim logs a failed native call as `LOG.error("AUTOTUNE native call failed ...", e)`,
/// so SLF4J prints the exception's stack trace under that ERROR line: for a panic, the
/// native frames from the panicking function down to the entry point, then the Java frames.
#[test]
fn a_native_panic_carries_its_backtrace_into_the_shims_error() {
    let mut env = jvm().attach_current_thread().unwrap();
    let trace = framed(&mut env, |env| {
        let message = env.new_string("boom with frames").unwrap();
        let trace: JString = call_static(
            env,
            "dev/flinkautotune/JniHarness",
            "panicTrace",
            "(Ljava/lang/String;)Ljava/lang/String;",
            &[JValue::Object(&message)],
        )
        .unwrap()
        .l()
        .unwrap()
        .into();
        String::from(env.get_string(&trace).unwrap())
    });
    let lines: Vec<&str> = trace.lines().collect();
    assert_eq!(
        lines[0],
        "dev.flinkautotune.AutotuneNativeException: native panic: boom with frames"
    );
    let frame = |needle: &str| {
        lines
            .iter()
            .position(|l| l.starts_with("\tat ") && l.contains(needle))
            .unwrap_or_else(|| panic!("no frame {needle} in:\n{trace}"))
    };
    // Innermost first, without the panic machinery: the function that panicked, with its
    // file and line (the tests' library has debug info).
    let panicked = frame("flink_autotune::panic_on_purpose(");
    assert_eq!(panicked, 1, "{trace}");
    assert!(lines[1].contains("src/lib.rs:"), "{trace}");
    let guard = frame("flink_autotune::bridge::guard(");
    let entry = frame("Java_dev_flinkautotune_AutotuneNative_panicForTesting(");
    let java = frame("dev.flinkautotune.AutotuneNative.panicForTesting(Native Method)");
    assert!(panicked < guard && guard < entry, "{trace}");
    // The native frames stop at the entry point; the JVM's own follow as Java frames.
    assert_eq!(entry + 1, java, "{trace}");
    assert!(!trace.contains("std::panicking"), "{trace}");
    assert!(!trace.contains("panics::hook"), "{trace}");
    // The hook's own ERROR record for the panic stays one line, without the frames.
    let logs = logs(&mut env);
    let record = logs
        .lines()
        .find(|l| l.contains("AUTOTUNE native panic") && l.contains("boom with frames"))
        .unwrap_or_else(|| panic!("no record of the panic in:\n{logs}"));
    assert!(record.starts_with("1 flink_autotune::panics "), "{record}");
    assert!(!record.contains("\\tat "), "{record}");
}

#[test]
fn errors_are_java_exceptions_with_a_reason() {
    let mut env = jvm().attach_current_thread().unwrap();
    let handle = open(&mut env, &[]).unwrap();

    let mut bad = task_vars("0");
    bad.retain(|(k, _)| *k != "<subtask_index>");
    bad.push(("<subtask_index>", "zero"));
    let err = register(
        &mut env,
        handle,
        0,
        &bad,
        Some("taskmanager.job.task"),
        "busyTimeMsPerSecond",
        3,
    )
    .unwrap_err();
    assert_eq!(err, "dev.flinkautotune.AutotuneNativeException: scope variable <subtask_index> is 'zero', not a number");

    let err = register(&mut env, handle, 0, &task_vars("0"), None, "x", 99).unwrap_err();
    assert!(err.ends_with("unknown metric kind 99"), "{err}");

    let err = register(&mut env, handle, -1, &task_vars("0"), None, "x", 3).unwrap_err();
    assert!(err.ends_with("negative slot -1"), "{err}");

    // A JVM exception raised inside the call stays the one the caller sees.
    let err = report(&mut env, handle, &[1.0, 2.0], 5).unwrap_err();
    assert!(
        err.starts_with("java.lang.ArrayIndexOutOfBoundsException"),
        "{err}"
    );

    call_static(&mut env, NATIVE, "close", "(J)V", &[JValue::Long(handle)]).unwrap();
    let err = report(&mut env, 0, &[1.0], 1).unwrap_err();
    assert_eq!(
        err,
        "dev.flinkautotune.AutotuneNativeException: the reporter is closed"
    );
}

#[test]
fn reporters_in_one_jvm_keep_separate_state() {
    let mut env = jvm().attach_current_thread().unwrap();
    let first = open(&mut env, &[]).unwrap();
    let second = open(&mut env, &[]).unwrap();
    assert_ne!(first, second);
    assert_eq!(
        register(
            &mut env,
            first,
            0,
            &task_vars("0"),
            Some("taskmanager.job.task"),
            "idleTimeMsPerSecond",
            3
        ),
        Ok(true)
    );
    // Slot 0 of the second reporter is its own.
    assert_eq!(
        register(
            &mut env,
            second,
            0,
            &[("<host>", "h")],
            Some("jobmanager"),
            "taskSlotsTotal",
            3
        ),
        Ok(true)
    );
    report(&mut env, first, &[1.0], 1).unwrap();
    report(&mut env, second, &[4.0], 1).unwrap();
    let lines = logs(&mut env);
    assert!(lines.contains("role=jobmanager tracked=1"), "{lines}");
    for handle in [first, second] {
        call_static(&mut env, NATIVE, "close", "(J)V", &[JValue::Long(handle)]).unwrap();
    }
}

#[test]
fn the_native_heap_is_counted_and_bad_options_are_named() {
    let mut env = jvm().attach_current_thread().unwrap();
    let heap_before = call_static(&mut env, NATIVE, "nativeHeapBytes", "()J", &[])
        .unwrap()
        .j()
        .unwrap();
    assert!(heap_before > 0);
    let handle = open(&mut env, &[("window-size", "1")]).unwrap();
    let lines = logs(&mut env);
    assert!(
        lines.contains("window-size: '1' must be a whole number"),
        "{lines}"
    );
    call_static(&mut env, NATIVE, "close", "(J)V", &[JValue::Long(handle)]).unwrap();
}

#[test]
fn many_scope_variables_use_a_bounded_number_of_local_references() {
    let mut env = jvm().attach_current_thread().unwrap();
    let handle = open(&mut env, &[]).unwrap();
    // `scope.variables.additional` can add any number of variables to every metric.
    let extra: Vec<(String, String)> = (0..40)
        .map(|i| (format!("<extra_{i}>"), format!("value-{i}")))
        .collect();
    let mut vars = task_vars("0");
    vars.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    assert_eq!(
        register(
            &mut env,
            handle,
            0,
            &vars,
            Some("taskmanager.job.task"),
            "busyTimeMsPerSecond",
            3
        ),
        Ok(true)
    );
    call_static(&mut env, NATIVE, "close", "(J)V", &[JValue::Long(handle)]).unwrap();
}

#[test]
fn a_jobmanager_starts_its_coordinator_which_logs_from_its_own_thread_and_stops_on_close() {
    let mut env = jvm().attach_current_thread().unwrap();
    // Nothing listens on port 9: the coordinator must say so once and keep going.
    let handle = open(
        &mut env,
        &[("decision-interval", "1 s"), ("stabilization", "0")],
    )
    .unwrap();
    framed(&mut env, |env| {
        let url = env.new_string("http://127.0.0.1:9").unwrap();
        let dir = env
            .new_string(
                std::env::temp_dir()
                    .join("autotune-jni-test")
                    .to_str()
                    .unwrap(),
            )
            .unwrap();
        let args = [
            JValue::Long(handle),
            JValue::Object(&url),
            JValue::Object(&dir),
        ];
        call_static(
            env,
            NATIVE,
            "configureCoordinator",
            "(JLjava/lang/String;Ljava/lang/String;)V",
            &args,
        )
        .unwrap();
    });
    assert_eq!(
        register(
            &mut env,
            handle,
            0,
            &[("<host>", "127.0.0.1")],
            Some("jobmanager"),
            "taskSlotsTotal",
            3
        ),
        Ok(true)
    );
    report(&mut env, handle, &[4.0], 1).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut lines = logs(&mut env);
    // A JobManager opens its reporters before its REST server: the coordinator's rounds go
    // on, on its own thread, and the silence is not said as trouble during the startup grace.
    while !lines.contains("AUTOTUNE COORDINATOR started rest=http://127.0.0.1:9")
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(100));
        lines = logs(&mut env);
    }
    assert!(
        lines.contains("AUTOTUNE COORDINATOR started rest=http://127.0.0.1:9"),
        "{lines}"
    );
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert!(
        !logs(&mut env).contains("trying again"),
        "not said as trouble"
    );
    let closing = std::time::Instant::now();
    call_static(&mut env, NATIVE, "close", "(J)V", &[JValue::Long(handle)]).unwrap();
    assert!(
        closing.elapsed() < std::time::Duration::from_secs(5),
        "close waited {:?}",
        closing.elapsed()
    );
    assert!(logs(&mut env).contains("AUTOTUNE COORDINATOR stopped"));
}

/// `-Xcheck:jni` prints its findings on the JVM's stdout instead of failing a call, so the
/// other tests of this file run again in a child process whose output is read here.
#[test]
fn xcheck_jni_finds_nothing_to_complain_about() {
    if std::env::var_os("AUTOTUNE_JNI_CHILD").is_some() {
        return;
    }
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--test-threads=1",
            "--skip",
            "xcheck_jni_finds_nothing_to_complain_about",
        ])
        .env("AUTOTUNE_JNI_CHILD", "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "the JNI tests failed under -Xcheck:jni:\n{text}"
    );
    assert!(text.contains("test result: ok. 11 passed"), "{text}");
    for complaint in [
        "WARNING in native method",
        "JNI local refs",
        "FATAL ERROR in native method",
    ] {
        assert!(
            !text.contains(complaint),
            "-Xcheck:jni complained ({complaint}):\n{text}"
        );
    }
}

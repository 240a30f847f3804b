//! Rust `log` records go to the shim's SLF4J logger, so they land in Flink's log files
//! with Flink's log configuration. The level in force comes from SLF4J with every report.

use std::sync::OnceLock;

use autotune_model::text::one_line;
use jni::objects::{GlobalRef, JClass, JStaticMethodID, JValue};
use jni::signature::{Primitive, ReturnType};
use jni::sys::jint;
use jni::{JNIEnv, JavaVM};
use log::{LevelFilter, Log, Metadata, Record};

const LOG_CLASS: &str = "dev/flinkautotune/NativeLog";

/// The shim's `NativeLog.log`, cached at load time; with the bridge's exception class, the
/// only process-wide JVM state.
struct JavaLog {
    vm: JavaVM,
    class: GlobalRef,
    method: JStaticMethodID,
}

static JAVA_LOG: OnceLock<JavaLog> = OnceLock::new();

struct JavaLogger;

static LOGGER: JavaLogger = JavaLogger;

/// Called from `JNI_OnLoad` (on the shim's class loader, where `NativeLog` is found).
pub fn install(env: &mut JNIEnv<'_>) -> Result<(), jni::errors::Error> {
    let class = env.find_class(LOG_CLASS)?;
    let method =
        env.get_static_method_id(&class, "log", "(ILjava/lang/String;Ljava/lang/String;)V")?;
    let class = env.new_global_ref(class)?;
    let vm = env.get_java_vm()?;
    let _ = JAVA_LOG.set(JavaLog { vm, class, method });
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(LevelFilter::Info);
    }
    Ok(())
}

/// The numbering shared with the shim: 0 off, 1 error, 2 warn, 3 info, 4 debug, 5 trace.
pub fn set_level(level: jint) {
    log::set_max_level(match level {
        i32::MIN..=0 => LevelFilter::Off,
        1 => LevelFilter::Error,
        2 => LevelFilter::Warn,
        3 => LevelFilter::Info,
        4 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    });
}

impl Log for JavaLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if self.enabled(record.metadata()) {
            // One record stays one line, whatever names or messages it carries.
            log_to_java(
                record.level() as i32,
                record.target(),
                &one_line(&record.args().to_string()),
            );
        }
    }

    fn flush(&self) {}
}

/// Sends one log record to the shim's `NativeLog.log`, from any thread. Logging never
/// fails the caller and never disturbs an exception that is pending on this thread.
fn log_to_java(level: i32, target: &str, message: &str) {
    let Some(log) = JAVA_LOG.get() else { return };
    let mut env = match log.vm.get_env() {
        Ok(env) => env,
        // A thread of our own: attach it as a daemon so it never holds the JVM open.
        Err(_) => match log.vm.attach_current_thread_as_daemon() {
            Ok(env) => env,
            Err(_) => return,
        },
    };
    let pending = if env.exception_check().unwrap_or(false) {
        let throwable = env.exception_occurred().ok();
        let _ = env.exception_clear();
        throwable
    } else {
        None
    };
    let _ = env.with_local_frame(4, |env| -> Result<(), jni::errors::Error> {
        let target = env.new_string(target)?;
        let message = env.new_string(message)?;
        let args = [
            JValue::Int(level).as_jni(),
            JValue::Object(&target).as_jni(),
            JValue::Object(&message).as_jni(),
        ];
        // SAFETY: the method id was looked up with exactly this signature on this class.
        let result = unsafe {
            env.call_static_method_unchecked(
                <&JClass>::from(log.class.as_obj()),
                log.method,
                ReturnType::Primitive(Primitive::Void),
                &args,
            )
        };
        if env.exception_check().unwrap_or(false) {
            let _ = env.exception_clear();
        }
        result.map(|_| ())
    });
    if let Some(throwable) = pending {
        let _ = env.throw(throwable);
    }
}

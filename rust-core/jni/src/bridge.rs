//! The rules of the JNI boundary in one place: the exception class cached at load time,
//! handles, string conversion, and [`guard`], which every entry point runs in.

use std::fmt;
use std::sync::{Mutex, OnceLock};

use jni::objects::{GlobalRef, JClass, JObject, JObjectArray, JString};
use jni::{JNIEnv, JavaVM};

use crate::reporter::Reporter;
use crate::{logging, panics};

const EXCEPTION_CLASS: &str = "dev/flinkautotune/AutotuneNativeException";

/// The shim's exception class, cached when the library is loaded (later threads could not
/// find it by name). The log bridge keeps its own (`logging`).
static EXCEPTION: OnceLock<GlobalRef> = OnceLock::new();

/// Called from `JNI_OnLoad`, on the thread (and class loader) of the shim's `System.load`.
pub fn init(vm: JavaVM) -> Result<(), Error> {
    let mut env = vm.get_env()?;
    let exception_class = env.find_class(EXCEPTION_CLASS)?;
    let exception_class = env.new_global_ref(exception_class)?;
    let _ = EXCEPTION.set(exception_class);
    logging::install(&mut env)?;
    panics::install();
    Ok(())
}

#[derive(Debug)]
pub enum Error {
    Jni(jni::errors::Error),
    Invalid(String),
    Closed,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Jni(e) => write!(f, "JNI error: {e}"),
            Error::Invalid(msg) => f.write_str(msg),
            Error::Closed => f.write_str("the reporter is closed"),
        }
    }
}

impl From<jni::errors::Error> for Error {
    fn from(e: jni::errors::Error) -> Self {
        Error::Jni(e)
    }
}

impl From<autotune_model::metrics::MetricError> for Error {
    fn from(e: autotune_model::metrics::MetricError) -> Self {
        Error::Invalid(e.0)
    }
}

/// Runs an entry point's body. Errors and panics become an `AutotuneNativeException`
/// for the shim, unless a Java exception is already pending: that one is the real cause
/// (e.g. an out-of-bounds array region) and is left for the caller to see. A panic's
/// exception message carries the native frames below its first line (`panics::Panic`).
pub fn guard<'l, R>(
    env: &mut JNIEnv<'l>,
    fallback: R,
    body: impl FnOnce(&mut JNIEnv<'l>) -> Result<R, Error>,
) -> R {
    match panics::catch(|| body(env)) {
        Ok(Ok(value)) => value,
        Ok(Err(error)) => {
            throw(env, &error.to_string());
            fallback
        }
        Err(panic) => {
            throw(env, &panic.to_string());
            fallback
        }
    }
}

fn throw(env: &mut JNIEnv<'_>, message: &str) {
    if env.exception_check().unwrap_or(true) {
        return;
    }
    let result = match EXCEPTION.get() {
        Some(class) => env.throw_new(<&JClass>::from(class.as_obj()), message),
        None => env.throw_new("java/lang/IllegalStateException", message),
    };
    if result.is_err() {
        let _ = env.throw_new("java/lang/RuntimeException", message);
    }
}

type Handle = Mutex<Reporter>;

pub fn into_handle(reporter: Reporter) -> i64 {
    Box::into_raw(Box::new(Mutex::new(reporter))) as i64
}

/// Runs `f` on the reporter behind `handle`. The shim serialises `close` with every
/// other call and never uses a handle after closing it; 0 is its "closed" value.
pub fn with_reporter<T>(handle: i64, f: impl FnOnce(&mut Reporter) -> T) -> Result<T, Error> {
    if handle == 0 {
        return Err(Error::Closed);
    }
    // SAFETY: non-zero handles come from `into_handle` and stay valid until `close_handle`.
    let cell = unsafe { &*(handle as *const Handle) };
    // A panic in an earlier call may have poisoned the lock; the state is still usable.
    let mut reporter = cell.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    Ok(f(&mut reporter))
}

pub fn close_handle(handle: i64) -> Result<(), Error> {
    if handle == 0 {
        return Err(Error::Closed);
    }
    // SAFETY: see `with_reporter`; the shim calls close exactly once per handle.
    let cell = unsafe { Box::from_raw(handle as *mut Handle) };
    let reporter = cell
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    reporter.close();
    Ok(())
}

pub fn string(env: &mut JNIEnv<'_>, s: &JString<'_>) -> Result<String, Error> {
    optional_string(env, s)?
        .ok_or_else(|| Error::Invalid("a required string argument is null".into()))
}

pub fn optional_string(env: &mut JNIEnv<'_>, s: &JString<'_>) -> Result<Option<String>, Error> {
    if s.is_null() {
        return Ok(None);
    }
    // SAFETY: every string parameter and array of the native methods is declared `String`
    // in Java, so the JVM has checked the type. The checked variant would look up
    // java.lang.String for every call and leak a local reference each time.
    Ok(Some(unsafe { env.get_string_unchecked(s) }?.into()))
}

pub fn strings(env: &mut JNIEnv<'_>, array: &JObjectArray<'_>) -> Result<Vec<String>, Error> {
    if array.is_null() {
        return Err(Error::Invalid("a required string array is null".into()));
    }
    let len = env.get_array_length(array)?;
    let mut out = Vec::with_capacity(len as usize);
    for i in 0..len {
        let element: JObject = env.get_object_array_element(array, i)?;
        if element.is_null() {
            return Err(Error::Invalid(format!(
                "element {i} of a string array is null"
            )));
        }
        let element = JString::from(element);
        // One local reference at a time, however many scope variables Flink passes.
        let text = string(env, &element);
        env.delete_local_ref(element)?;
        out.push(text?);
    }
    Ok(out)
}

/// A new `String[]` holding `values`; one local reference at a time.
pub fn new_strings<'l>(env: &mut JNIEnv<'l>, values: &[String]) -> Result<JObjectArray<'l>, Error> {
    let len = i32::try_from(values.len())
        .map_err(|_| Error::Invalid(format!("{} strings do not fit an array", values.len())))?;
    let array = env.new_object_array(len, "java/lang/String", JObject::null())?;
    for (i, value) in values.iter().enumerate() {
        let element = env.new_string(value)?;
        env.set_object_array_element(&array, i as i32, &element)?;
        env.delete_local_ref(element)?;
    }
    Ok(array)
}

/// A Java string, or null for `None`.
pub fn optional_jstring(
    env: &mut JNIEnv<'_>,
    s: Option<String>,
) -> Result<jni::sys::jstring, Error> {
    match s {
        Some(s) => Ok(env.new_string(s)?.into_raw()),
        None => Ok(std::ptr::null_mut()),
    }
}

//! The native half of the flink-autotune plugin.
//!
//! Every `Java_dev_flinkautotune_AutotuneNative_*` function below is an entry point of
//! the Java class `dev.flinkautotune.AutotuneNative`. Each one runs inside
//! [`bridge::guard`], which turns errors and panics into the shim's
//! `AutotuneNativeException` (never replacing an exception already pending; a panic's
//! carries its native backtrace, see [`panics`]), so nothing here can take a Flink process
//! down. Per-reporter state hangs off an opaque handle; only the JavaVM, the cached classes,
//! the logger and the panic hook are global.

mod alloc;
mod bridge;
mod logging;
mod panics;
pub mod reporter;

use std::ffi::c_void;

use jni::objects::{JClass, JDoubleArray, JObjectArray, JString};
use jni::sys::{jboolean, jdouble, jint, jlong, jobjectArray, jstring, JNI_ERR, JNI_VERSION_1_8};
use jni::{JNIEnv, JavaVM};

use autotune_model::metrics::{MetricKind, RawMetric};
use autotune_model::profile::Sampled;
use bridge::{guard, Error};
use reporter::Reporter;

#[global_allocator]
static ALLOCATOR: alloc::CountingAllocator = alloc::CountingAllocator;

/// Runs when the shim's `System.load` maps this library: caches what later calls need,
/// on the class loader that loaded the shim (later threads could not find it by name).
#[no_mangle]
pub extern "system" fn JNI_OnLoad(vm: JavaVM, _reserved: *mut c_void) -> jint {
    match bridge::init(vm) {
        Ok(()) => JNI_VERSION_1_8,
        Err(_) => JNI_ERR,
    }
}

#[no_mangle]
pub extern "system" fn Java_dev_flinkautotune_AutotuneNative_nativeVersion<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
) -> jstring {
    guard(&mut env, std::ptr::null_mut(), |env| {
        Ok(env.new_string(autotune_model::VERSION)?.into_raw())
    })
}

/// Bytes the native library holds on its heap right now (all reporters of this loader).
#[no_mangle]
pub extern "system" fn Java_dev_flinkautotune_AutotuneNative_nativeHeapBytes<'l>(
    _env: JNIEnv<'l>,
    _class: JClass<'l>,
) -> jlong {
    alloc::allocated_bytes() as jlong
}

/// Creates the state of one reporter instance from its `metrics.reporter.autotune.*` options.
#[no_mangle]
pub extern "system" fn Java_dev_flinkautotune_AutotuneNative_open<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    option_keys: JObjectArray<'l>,
    option_values: JObjectArray<'l>,
    plugin_version: JString<'l>,
    platform: JString<'l>,
) -> jlong {
    guard(&mut env, 0, |env| {
        let keys = bridge::strings(env, &option_keys)?;
        let values = bridge::strings(env, &option_values)?;
        if keys.len() != values.len() {
            return Err(Error::Invalid(format!(
                "{} option keys but {} values",
                keys.len(),
                values.len()
            )));
        }
        let plugin_version = bridge::string(env, &plugin_version)?;
        let platform = bridge::string(env, &platform)?;
        let options = keys
            .iter()
            .map(String::as_str)
            .zip(values.iter().map(String::as_str));
        let reporter = Reporter::open(options, plugin_version, platform);
        Ok(bridge::into_handle(reporter))
    })
}

/// Tells the native side what the metric in `slot` is. Returns whether a model reads it:
/// when false the shim forgets the metric and never reads it again.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "system" fn Java_dev_flinkautotune_AutotuneNative_register<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    slot: jint,
    variable_keys: JObjectArray<'l>,
    variable_values: JObjectArray<'l>,
    logical_scope: JString<'l>,
    name: JString<'l>,
    kind: jint,
) -> jboolean {
    guard(&mut env, 0, |env| {
        let slot =
            usize::try_from(slot).map_err(|_| Error::Invalid(format!("negative slot {slot}")))?;
        let kind = MetricKind::from_code(kind)
            .ok_or_else(|| Error::Invalid(format!("unknown metric kind {kind}")))?;
        let keys = bridge::strings(env, &variable_keys)?;
        let values = bridge::strings(env, &variable_values)?;
        let variables: Vec<(&str, &str)> = keys
            .iter()
            .map(String::as_str)
            .zip(values.iter().map(String::as_str))
            .collect();
        let logical_scope = bridge::optional_string(env, &logical_scope)?;
        let name = bridge::string(env, &name)?;
        let raw = RawMetric {
            variables: &variables,
            logical_scope: logical_scope.as_deref(),
            name: &name,
            kind,
        };
        let tracked = bridge::with_reporter(handle, |r| r.register(slot, raw))??;
        Ok(tracked as jboolean)
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_flinkautotune_AutotuneNative_unregister<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    slot: jint,
) {
    guard(&mut env, (), |_| {
        let slot =
            usize::try_from(slot).map_err(|_| Error::Invalid(format!("negative slot {slot}")))?;
        bridge::with_reporter(handle, |r| r.unregister(slot))
    })
}

/// One report round: `values[0..count]` holds the value of every slot (NaN: none).
/// `last_read_nanos` is what reading the values cost the shim in the previous round (Flink's
/// own gauges run there), `last_cost_nanos` what the whole previous round cost;
/// `log_level` is the SLF4J level in force (0 off .. 5 trace).
///
/// Returns null, or the task threads to sample now: `[samples, pause ms, max depth]`
/// followed by `job id, vertex id, vertex name, thread-name prefix` per vertex.
#[no_mangle]
pub extern "system" fn Java_dev_flinkautotune_AutotuneNative_report<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    values: JDoubleArray<'l>,
    count: jint,
    last_read_nanos: jlong,
    last_cost_nanos: jlong,
    log_level: jint,
) -> jobjectArray {
    guard(&mut env, std::ptr::null_mut(), |env| {
        logging::set_level(log_level);
        let count = usize::try_from(count)
            .map_err(|_| Error::Invalid(format!("negative count {count}")))?;
        let request = bridge::with_reporter(handle, |r| -> Result<Vec<String>, Error> {
            let row: &mut [jdouble] = r.next_round(count);
            // A JVM-side bounds error stays the pending ArrayIndexOutOfBoundsException,
            // and the half-filled row is not counted as a round.
            env.get_double_array_region(&values, 0, row)?;
            let targets = r.report(count, last_read_nanos, last_cost_nanos);
            if targets.is_empty() {
                return Ok(Vec::new());
            }
            let mut request: Vec<String> =
                r.sampling_parameters().iter().map(u64::to_string).collect();
            for t in targets {
                request.push(t.job_id.to_string());
                request.push(t.vertex_id.to_string());
                request.push(t.vertex_name.to_string());
                request.push(t.thread_prefix());
            }
            Ok(request)
        })??;
        if request.is_empty() {
            return Ok(std::ptr::null_mut());
        }
        Ok(bridge::new_strings(env, &request)?.into_raw())
    })
}

/// What the shim sampled of one vertex's task threads: one folded stack (`root;...;leaf`)
/// per thread sample; `threads` 0 when no task thread of the vertex was found.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "system" fn Java_dev_flinkautotune_AutotuneNative_profile<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    job_id: JString<'l>,
    vertex_id: JString<'l>,
    vertex_name: JString<'l>,
    stacks: JObjectArray<'l>,
    threads: jint,
    sampling_nanos: jlong,
    sampling_max_nanos: jlong,
) {
    guard(&mut env, (), |env| {
        let job_id = bridge::string(env, &job_id)?;
        let vertex_id = bridge::string(env, &vertex_id)?;
        let vertex_name = bridge::string(env, &vertex_name)?;
        let stacks = bridge::strings(env, &stacks)?;
        let sampled = Sampled {
            job_id: &job_id,
            vertex_id: &vertex_id,
            vertex_name: &vertex_name,
            at_ms: autotune_coordinator::epoch_ms(),
            stacks: &stacks,
            threads: u32::try_from(threads).unwrap_or(0),
            sampling_us: (sampling_nanos.max(0) / 1_000) as u64,
            sampling_max_us: (sampling_max_nanos.max(0) / 1_000) as u64,
        };
        bridge::with_reporter(handle, |r| r.add_profile(&sampled))
    })
}

/// The profiles this TaskManager sampled last, as JSON (`[profile::Profile]`), or null when
/// there are none. Called when Flink reads the published gauge.
#[no_mangle]
pub extern "system" fn Java_dev_flinkautotune_AutotuneNative_profiles<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
) -> jstring {
    guard(&mut env, std::ptr::null_mut(), |env| {
        let json = bridge::with_reporter(handle, |r| r.profiles_json().map(str::to_owned))?;
        bridge::optional_jstring(env, json)
    })
}

/// This TaskManager's pool window as JSON (`memory::PoolWindow`), or null when the process
/// has no TaskManager metrics. Called when Flink reads the published gauge, not per round.
#[no_mangle]
pub extern "system" fn Java_dev_flinkautotune_AutotuneNative_poolWindow<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
) -> jstring {
    guard(&mut env, std::ptr::null_mut(), |env| {
        let json = bridge::with_reporter(handle, |r| r.pool_window_json())?;
        bridge::optional_jstring(env, json)
    })
}

/// This TaskManager's subtask loads as JSON (`tracker::TaskLoads`), or null when it runs
/// none. Called when Flink reads the published gauge, not per round.
#[no_mangle]
pub extern "system" fn Java_dev_flinkautotune_AutotuneNative_taskLoads<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
) -> jstring {
    guard(&mut env, std::ptr::null_mut(), |env| {
        let json = bridge::with_reporter(handle, |r| r.task_loads_json())?;
        bridge::optional_jstring(env, json)
    })
}

/// In a JobManager, the coordinator's figures when they changed since `version`: the version
/// now, then `job id, group key, group value, name, value` per figure; null when unchanged.
/// Called once per report, so the shim's gauges cost no native call when Flink reads them.
#[no_mangle]
pub extern "system" fn Java_dev_flinkautotune_AutotuneNative_figures<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    version: jlong,
) -> jobjectArray {
    guard(&mut env, std::ptr::null_mut(), |env| {
        let flat = bridge::with_reporter(handle, |r| r.figures_since(version as u64))?;
        match flat {
            Some(flat) => Ok(bridge::new_strings(env, &flat)?.into_raw()),
            None => Ok(std::ptr::null_mut()),
        }
    })
}

/// Tells a JobManager's reporter where its REST API and log folder are (nulls: unknown).
#[no_mangle]
pub extern "system" fn Java_dev_flinkautotune_AutotuneNative_configureCoordinator<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    rest_url: JString<'l>,
    output_dir: JString<'l>,
) {
    guard(&mut env, (), |env| {
        let rest_url = bridge::optional_string(env, &rest_url)?;
        let output_dir = bridge::optional_string(env, &output_dir)?;
        bridge::with_reporter(handle, |r| r.configure_coordinator(rest_url, output_dir))
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_flinkautotune_AutotuneNative_close<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
) {
    guard(&mut env, (), |_| bridge::close_handle(handle))
}

/// Panics on purpose, so tests can prove a panic surfaces as the shim's exception, with the
/// native frames down to here, and leaves the JVM (and this library) usable.
#[no_mangle]
pub extern "system" fn Java_dev_flinkautotune_AutotuneNative_panicForTesting<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    message: JString<'l>,
) {
    guard(&mut env, (), |env| {
        let message = bridge::string(env, &message)?;
        panic_on_purpose(&message)
    })
}

/// A frame of its own, for the tests to find in the panic's backtrace.
#[inline(never)]
fn panic_on_purpose(message: &str) -> ! {
    panic!("{message}");
}

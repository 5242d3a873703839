//! The few proxy-wasm host calls the filter makes, returning the host's status as an error.
//!
//! The SDK's own wrappers `panic!` on any status they do not expect, and reading a header value that is not
//! UTF-8 panics too; in the module a panic aborts the VM and fails traffic. These wrappers never panic: the
//! caller decides what an error means. Memory the host hands back was allocated through the SDK's exported
//! `proxy_on_memory_allocate` (a `Vec` with capacity == length), so it is reclaimed the same way.
#![allow(unsafe_code)]

use std::ptr::{null, null_mut};

use proxy_wasm::types::{BufferType, MapType};

pub use crate::proxy_host::HostStatus;

const OK: u32 = 0;
const NOT_FOUND: u32 = 1;
const CAS_MISMATCH: u32 = 8;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_replace_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_add_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: MapType, key_data: *const u8, key_size: usize) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_get_header_map_pairs(map_type: MapType, return_map_data: *mut *mut u8, return_map_size: *mut usize)
        -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_get_log_level(return_level: *mut u32) -> u32;
    fn proxy_define_metric(metric_type: u32, name_data: *const u8, name_size: usize, return_id: *mut u32) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: BufferType,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_set_buffer_bytes(
        buffer_type: BufferType,
        start: usize,
        size: usize,
        data: *const u8,
        data_size: usize,
    ) -> u32;
}

/// Takes ownership of bytes the host allocated for us.
///
/// Safety: `data` is null or was returned by the host with `size` bytes, allocated by
/// `proxy_on_memory_allocate(size)`.
unsafe fn take_host_bytes(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        Vec::new()
    } else {
        Vec::from_raw_parts(data, size, size)
    }
}

/// Every header of a map in proxy-wasm's pairs encoding (see [`crate::header_block`]).
pub fn header_pairs(map: MapType) -> Result<Vec<u8>, HostStatus> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: the pointers are valid for the call; the returned buffer is taken over exactly once.
    match unsafe { proxy_get_header_map_pairs(map, &mut data, &mut size) } {
        OK => Ok(unsafe { take_host_bytes(data, size) }),
        NOT_FOUND => Ok(Vec::new()),
        status => Err(HostStatus(status)),
    }
}

/// A property such as `source.address`, given as its path segments separated by NUL (`source\0address`).
pub fn property(path: &str) -> Result<Option<Vec<u8>>, HostStatus> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: as in `header_pairs`.
    match unsafe { proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) } {
        OK => Ok(Some(unsafe { take_host_bytes(data, size) })),
        NOT_FOUND => Ok(None),
        status => Err(HostStatus(status)),
    }
}

/// The proxy's log level for this plugin (0 = trace … 4 = error, 5 = critical).
pub fn log_level() -> Result<u32, HostStatus> {
    let mut level: u32 = 0;
    // SAFETY: the pointer is valid for the call.
    match unsafe { proxy_get_log_level(&mut level) } {
        OK => Ok(level),
        status => Err(HostStatus(status)),
    }
}

/// Defines (or finds) a counter named `name`; Envoy files it as `wasmcustom.<name>`. Returns its id.
pub fn define_counter(name: &str) -> Result<u32, HostStatus> {
    const COUNTER: u32 = 0;
    let mut id: u32 = 0;
    // SAFETY: the name describes a live string and the id pointer is valid for the call.
    match unsafe { proxy_define_metric(COUNTER, name.as_ptr(), name.len(), &mut id) } {
        OK => Ok(id),
        status => Err(HostStatus(status)),
    }
}

pub fn increment_counter(id: u32, by: u64) -> Result<(), HostStatus> {
    let by = i64::try_from(by).unwrap_or(i64::MAX);
    // SAFETY: plain values only.
    status_result(unsafe { proxy_increment_metric(id, by) })
}

/// Asks for `on_tick` every `milliseconds` (0 stops it).
pub fn set_tick_period(milliseconds: u32) -> Result<(), HostStatus> {
    // SAFETY: plain values only.
    status_result(unsafe { proxy_set_tick_period_milliseconds(milliseconds) })
}

pub fn set_header(map: MapType, name: &str, value: &str) -> Result<(), HostStatus> {
    // SAFETY: the pointers and lengths describe live strings for the duration of the call.
    let status = unsafe { proxy_replace_header_map_value(map, name.as_ptr(), name.len(), value.as_ptr(), value.len()) };
    status_result(status)
}

pub fn add_header(map: MapType, name: &str, value: &str) -> Result<(), HostStatus> {
    // SAFETY: as in `set_header`.
    let status = unsafe { proxy_add_header_map_value(map, name.as_ptr(), name.len(), value.as_ptr(), value.len()) };
    status_result(status)
}

pub fn remove_header(map: MapType, name: &str) -> Result<(), HostStatus> {
    // SAFETY: as in `set_header`.
    let status = unsafe { proxy_remove_header_map_value(map, name.as_ptr(), name.len()) };
    // Removing a header that is not there is not a failure.
    if status == NOT_FOUND {
        return Ok(());
    }
    status_result(status)
}

/// Sends a local reply; it takes effect once the current callback returns.
pub fn send_response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Result<(), HostStatus> {
    let serialized = crate::header_block::encode(headers.iter().copied());
    // SAFETY: every pointer/length pair describes a live buffer for the duration of the call.
    let status = unsafe {
        proxy_send_local_response(
            u32::from(status),
            null(),
            0,
            body.as_ptr(),
            body.len(),
            serialized.as_ptr(),
            serialized.len(),
            -1,
        )
    };
    status_result(status)
}

/// The plugin configuration (`configuration` of the Wasm filter); `None` when there is none.
pub fn plugin_configuration() -> Result<Option<Vec<u8>>, HostStatus> {
    buffer(BufferType::PluginConfiguration, usize::MAX)
}

/// The first `max` bytes of a buffer (the plugin configuration, or a body inside its body callback); `None`
/// when there is none.
pub fn buffer(buffer: BufferType, max: usize) -> Result<Option<Vec<u8>>, HostStatus> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: as in `header_pairs`.
    let status = unsafe { proxy_get_buffer_bytes(buffer, 0, max, &mut data, &mut size) };
    match status {
        OK if data.is_null() => Ok(None),
        OK => Ok(Some(unsafe { take_host_bytes(data, size) })),
        NOT_FOUND => Ok(None),
        status => Err(HostStatus(status)),
    }
}

/// A shared-data value (shared by every VM of the proxy under one lock) and its compare-and-swap token;
/// `None` when the key was never written.
pub fn shared_data(key: &str) -> Result<Option<(Vec<u8>, u32)>, HostStatus> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    let mut cas: u32 = 0;
    // SAFETY: as in `header_pairs`; the token pointer is valid for the call.
    match unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) } {
        OK => Ok(Some((unsafe { take_host_bytes(data, size) }, cas))),
        NOT_FOUND => Ok(None),
        status => Err(HostStatus(status)),
    }
}

/// Writes a shared-data value if `cas` is still its token (0: unconditionally); `Ok(false)` on a mismatch.
pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> Result<bool, HostStatus> {
    // SAFETY: the pointers and lengths describe live buffers for the duration of the call.
    match unsafe { proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas) } {
        OK => Ok(true),
        CAS_MISMATCH => Ok(false),
        status => Err(HostStatus(status)),
    }
}

/// The proxy's wall clock, in nanoseconds since the Unix epoch (the same clock for every worker).
pub fn current_time_nanos() -> Result<u64, HostStatus> {
    let mut nanos: u64 = 0;
    // SAFETY: the pointer is valid for the call.
    match unsafe { proxy_get_current_time_nanoseconds(&mut nanos) } {
        OK => Ok(nanos),
        status => Err(HostStatus(status)),
    }
}

/// Replaces the first `replaced` bytes of a buffer with `data`: with `replaced` its whole length, the whole
/// body (only inside that body's callback).
pub fn set_buffer(buffer: BufferType, replaced: usize, data: &[u8]) -> Result<(), HostStatus> {
    // SAFETY: `data` is valid for `data.len()` bytes for the duration of the call; the host copies it.
    let status = unsafe { proxy_set_buffer_bytes(buffer, 0, replaced, data.as_ptr(), data.len()) };
    status_result(status)
}

fn status_result(status: u32) -> Result<(), HostStatus> {
    if status == OK {
        Ok(())
    } else {
        Err(HostStatus(status))
    }
}

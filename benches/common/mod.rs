//! Helpers the end-to-end benches share: reading a child job's memory from
//! `/proc` and its progress from `/metrics`.
#![allow(dead_code)]

/// A `Vm*` line of `/proc/PID/status` (e.g. `VmRSS`, `VmHWM`), in KiB.
pub fn vm_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Rows written so far (comments + rejected), from the job's `/metrics`.
pub fn written(addr: std::net::SocketAddr) -> u64 {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return 0;
    };
    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n");
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.lines()
        .filter(|l| {
            l.starts_with("verbatim_comment_rows_total ")
                || l.starts_with("verbatim_rejected_total{")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

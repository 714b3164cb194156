//! rusthello is an example edgefabric workload in Rust, standard library only,
//! built for WASI preview 1 (rustc --target wasm32-wasi) or natively.
//!
//!     rusthello [run]        greet; print the arguments and the environment;
//!                            then, as the environment asks: print the file
//!                            $READ_FILE, write and read back a file in
//!                            $WRITE_DIR, sleep $SLEEP_MS milliseconds, panic
//!                            with $PANIC, exit with $EXIT_CODE, and else serve
//!                            HTTP if a listening socket was preopened
//!     rusthello echo ARGS    print ARGS
//!     rusthello cat FILE     print FILE (-: standard input)
//!     rusthello sleep MS     sleep MS milliseconds, print how long it took
//!     rusthello exit CODE    exit with CODE
//!     rusthello panic MSG    panic with MSG (a trap under WASI)
//!     rusthello alloc MB     allocate and touch MB mebibytes, print the sum
//!     rusthello serve        serve HTTP (WASI: the first preopened listening
//!                            socket, which the agent makes of the pod's
//!                            containerPort; natively: :$PORT, default 8080)
//!     rusthello serve-poll   the same, with non-blocking sockets and one
//!                            poll_oneoff loop (WASI only); run serves so
//!                            when $POLL is set
//!
//! The HTTP server answers one request per connection (Connection: close).
//! serve takes one connection at a time, with blocking std::net calls;
//! serve-poll serves many at once, as an event loop (mio, tokio) would:
//!
//!     GET  /            "hello from rust on $HOSTNAME"
//!     GET  /env?NAME    the value of the environment variable NAME
//!     GET  /file        the contents of $READ_FILE
//!     POST /echo        the request body (Content-Length)

use std::collections::BTreeMap;
use std::env;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process;
use std::thread;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = env::args().collect();
    let cmd = args.get(1).map(String::as_str).unwrap_or("run");
    let rest = if args.len() > 2 { &args[2..] } else { &[] };
    let code = match cmd {
        "run" => run(&args),
        "echo" => {
            println!("{}", rest.join(" "));
            0
        }
        "cat" => match rest.first() {
            Some(path) => cat(path),
            None => usage("cat FILE"),
        },
        "sleep" => match rest.first().and_then(|s| s.parse::<u64>().ok()) {
            Some(ms) => {
                sleep(ms);
                0
            }
            None => usage("sleep MILLISECONDS"),
        },
        "exit" => match rest.first().and_then(|s| s.parse::<i32>().ok()) {
            Some(code) => code,
            None => usage("exit CODE"),
        },
        "panic" => panic!("{}", rest.join(" ")),
        "alloc" => match rest.first().and_then(|s| s.parse::<usize>().ok()) {
            Some(mb) => alloc(mb),
            None => usage("alloc MEBIBYTES"),
        },
        "serve" => serve(false),
        "serve-poll" => serve(true),
        other => {
            eprintln!("rusthello: unknown command {:?} (run, echo, cat, sleep, exit, panic, alloc, serve, serve-poll)", other);
            2
        }
    };
    io::stdout().flush().ok();
    process::exit(code);
}

fn usage(what: &str) -> i32 {
    eprintln!("rusthello: usage: rusthello {}", what);
    2
}

fn run(args: &[String]) -> i32 {
    println!("hello from rust");
    println!("args: {:?}", args);
    let vars: BTreeMap<String, String> = env::vars().collect();
    for (k, v) in &vars {
        println!("env: {}={}", k, v);
    }
    if let Some(path) = vars.get("READ_FILE") {
        if cat(path) != 0 {
            return 1;
        }
    }
    if let Some(dir) = vars.get("WRITE_DIR") {
        if let Err(e) = write_and_read(Path::new(dir)) {
            eprintln!("rusthello: write in {}: {}", dir, e);
            return 1;
        }
    }
    if let Some(ms) = vars.get("SLEEP_MS") {
        match ms.parse::<u64>() {
            Ok(ms) => sleep(ms),
            Err(_) => {
                eprintln!("rusthello: SLEEP_MS={:?} is not a number of milliseconds", ms);
                return 2;
            }
        }
    }
    if let Some(msg) = vars.get("PANIC") {
        io::stdout().flush().ok();
        panic!("{}", msg);
    }
    if let Some(code) = vars.get("EXIT_CODE") {
        return match code.parse::<i32>() {
            Ok(code) => {
                println!("exiting with {}", code);
                code
            }
            Err(_) => {
                eprintln!("rusthello: EXIT_CODE={:?} is not a number", code);
                2
            }
        };
    }
    if let Some(l) = preopened_listener() {
        return serve_on(l, vars.contains_key("POLL"));
    }
    println!("done");
    0
}

fn cat(path: &str) -> i32 {
    let read = if path == "-" {
        let mut s = String::new();
        io::stdin().read_to_string(&mut s).map(|_| s)
    } else {
        fs::read_to_string(path)
    };
    match read {
        Ok(s) => {
            println!("read {}: {}", path, s.trim_end());
            0
        }
        Err(e) => {
            eprintln!("rusthello: read {}: {}", path, e);
            1
        }
    }
}

/// write_and_read appends a line to dir/rusthello.txt, creating it, lists dir
/// and reads the file back. On the way it creates, renames, inspects and
/// removes files and directories in dir/tmp.
fn write_and_read(dir: &Path) -> io::Result<()> {
    let tmp = dir.join("tmp");
    fs::create_dir_all(tmp.join("a/b"))?;
    fs::write(tmp.join("a/b/new"), b"0123456789")?;
    fs::rename(tmp.join("a/b/new"), tmp.join("a/moved"))?;
    let meta = fs::metadata(tmp.join("a/moved"))?;
    if meta.len() != 10 || !meta.is_file() || meta.modified().is_err() {
        return Err(io::Error::new(io::ErrorKind::Other, "a renamed file's metadata is wrong"));
    }
    fs::remove_file(tmp.join("a/moved"))?;
    fs::remove_dir_all(&tmp)?;

    let file = dir.join("rusthello.txt");
    let mut f = fs::OpenOptions::new().create(true).append(true).open(&file)?;
    writeln!(f, "written by rusthello")?;
    f.sync_all()?;
    drop(f);
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        names.push(entry?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    let n = fs::read_to_string(&file)?.lines().count();
    println!("wrote {} ({} lines); {} holds {:?}", file.display(), n, dir.display(), names);
    Ok(())
}

/// alloc allocates mb mebibytes, touches every page and prints their sum.
fn alloc(mb: usize) -> i32 {
    let mut v: Vec<u8> = vec![0; mb << 20];
    for i in (0..v.len()).step_by(4096) {
        v[i] = 1;
    }
    println!("allocated {} MiB, sum {}", mb, v.iter().map(|&b| b as u64).sum::<u64>());
    0
}

fn sleep(ms: u64) {
    let start = Instant::now();
    thread::sleep(Duration::from_millis(ms));
    println!("slept {} ms (asked {} ms)", start.elapsed().as_millis(), ms);
}

// ---- HTTP ----

#[cfg(target_os = "wasi")]
mod wasi {
    //! The few WASI preview 1 calls std does not offer.

    /// The fdstat of WASI preview 1; only the file type is looked at.
    #[repr(C)]
    pub struct FdStat {
        pub filetype: u8,
        pub flags: u16,
        pub rights_base: u64,
        pub rights_inheriting: u64,
    }

    /// A subscription of poll_oneoff (48 bytes): for a clock, fd_or_clock
    /// is the clock's id; for fd_read and fd_write, the descriptor.
    #[repr(C)]
    pub struct Subscription {
        pub userdata: u64,
        pub tag: u8,
        pub _pad: [u8; 7],
        pub fd_or_clock: u32,
        pub _pad2: u32,
        pub timeout: u64,
        pub precision: u64,
        pub flags: u16,
        pub _pad3: [u8; 6],
    }

    /// An event of poll_oneoff (32 bytes).
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct Event {
        pub userdata: u64,
        pub error: u16,
        pub tag: u8,
        pub _pad: [u8; 5],
        pub nbytes: u64,
        pub flags: u16,
        pub _pad2: [u8; 6],
    }

    pub const ERRNO_BADF: u16 = 8;
    pub const FILETYPE_SOCKET_STREAM: u8 = 6;
    pub const EVENTTYPE_CLOCK: u8 = 0;
    pub const EVENTTYPE_FD_READ: u8 = 1;
    pub const EVENTTYPE_FD_WRITE: u8 = 2;
    pub const CLOCKID_MONOTONIC: u32 = 1;

    #[link(wasm_import_module = "wasi_snapshot_preview1")]
    extern "C" {
        pub fn fd_fdstat_get(fd: u32, stat: *mut FdStat) -> u16;
        pub fn poll_oneoff(subs: *const Subscription, events: *mut Event, n: u32, nevents: *mut u32) -> u16;
    }

    pub fn subscription(userdata: u64, tag: u8, fd_or_clock: u32, timeout: u64) -> Subscription {
        Subscription { userdata, tag, _pad: [0; 7], fd_or_clock, _pad2: 0, timeout, precision: 0, flags: 0, _pad3: [0; 6] }
    }

    /// poll waits for the subscriptions and returns the events.
    pub fn poll(subs: &[Subscription]) -> Result<Vec<Event>, u16> {
        let empty = Event { userdata: 0, error: 0, tag: 0, _pad: [0; 5], nbytes: 0, flags: 0, _pad2: [0; 6] };
        let mut events = vec![empty; subs.len()];
        let mut n: u32 = 0;
        let errno = unsafe { poll_oneoff(subs.as_ptr(), events.as_mut_ptr(), subs.len() as u32, &mut n) };
        if errno != 0 {
            return Err(errno);
        }
        events.truncate(n as usize);
        Ok(events)
    }
}

/// preopened_listener returns the first preopened listening socket: the
/// agent preopens the pod's containerPorts after its directories (volumes),
/// from file descriptor 3 on.
#[cfg(target_os = "wasi")]
fn preopened_listener() -> Option<TcpListener> {
    use std::os::wasi::io::FromRawFd;
    for fd in 3..64u32 {
        let mut st = wasi::FdStat { filetype: 0, flags: 0, rights_base: 0, rights_inheriting: 0 };
        let errno = unsafe { wasi::fd_fdstat_get(fd, &mut st) };
        if errno == wasi::ERRNO_BADF {
            break;
        }
        if errno == 0 && st.filetype == wasi::FILETYPE_SOCKET_STREAM {
            return Some(unsafe { TcpListener::from_raw_fd(fd as i32) });
        }
    }
    None
}

#[cfg(not(target_os = "wasi"))]
fn preopened_listener() -> Option<TcpListener> {
    None
}

fn serve(poll: bool) -> i32 {
    let listener = match preopened_listener() {
        Some(l) => l,
        None if cfg!(target_os = "wasi") => {
            eprintln!("rusthello: no preopened listening socket: give the container a containerPort");
            return 1;
        }
        None => {
            let port = env::var("PORT").unwrap_or_else(|_| "8080".to_string());
            match TcpListener::bind(format!("0.0.0.0:{}", port)) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("rusthello: listen on :{}: {}", port, e);
                    return 1;
                }
            }
        }
    };
    serve_on(listener, poll)
}

fn serve_on(listener: TcpListener, poll: bool) -> i32 {
    println!("serving HTTP{}", if poll { " (poll)" } else { "" });
    io::stdout().flush().ok();
    if poll {
        return serve_poll(listener);
    }
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = handle(stream) {
                    eprintln!("rusthello: connection: {}", e);
                }
            }
            Err(e) => {
                eprintln!("rusthello: accept: {}", e);
                return 1;
            }
        }
    }
}

/// handle answers the one request of a blocking connection.
fn handle(stream: TcpStream) -> io::Result<()> {
    let mut s = &stream; // one stream for reading and writing: try_clone is unsupported on WASI
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(answer) = parse(&buf) {
            return s.write_all(&answer);
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Ok(()); // the client went away before a whole request
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A connection of serve_poll: the request read so far, then the answer
/// still to write.
#[cfg(target_os = "wasi")]
struct Conn {
    stream: TcpStream,
    input: Vec<u8>,
    output: Vec<u8>,
    written: usize,
    answered: bool,
}

#[cfg(target_os = "wasi")]
fn serve_poll(listener: TcpListener) -> i32 {
    if let Err(e) = listener.set_nonblocking(true) {
        eprintln!("rusthello: non-blocking listener: {}", e);
        return 1;
    }
    use std::os::wasi::io::AsRawFd;
    let mut conns: Vec<Conn> = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        // The listener (userdata 0), each connection (its index + 1) for
        // reading or writing, and a clock, so that the loop wakes now and then.
        let mut subs = vec![wasi::subscription(0, wasi::EVENTTYPE_FD_READ, listener.as_raw_fd() as u32, 0)];
        for (i, c) in conns.iter().enumerate() {
            let tag = if c.answered { wasi::EVENTTYPE_FD_WRITE } else { wasi::EVENTTYPE_FD_READ };
            subs.push(wasi::subscription(i as u64 + 1, tag, c.stream.as_raw_fd() as u32, 0));
        }
        subs.push(wasi::subscription(u64::MAX, wasi::EVENTTYPE_CLOCK, wasi::CLOCKID_MONOTONIC, 10_000_000_000));
        let events = match wasi::poll(&subs) {
            Ok(ev) => ev,
            Err(errno) => {
                eprintln!("rusthello: poll_oneoff: errno {}", errno);
                return 1;
            }
        };
        let mut ready = vec![false; conns.len()];
        let mut accept = false;
        for e in &events {
            match e.userdata {
                0 => accept = true,
                u64::MAX => {}
                i => ready[i as usize - 1] = true,
            }
        }
        for (i, c) in conns.iter_mut().enumerate() {
            if !ready[i] {
                continue;
            }
            if !c.answered {
                match c.stream.read(&mut chunk) {
                    Ok(0) => c.answered = true, // gone: closed below, with nothing to write
                    Ok(n) => {
                        c.input.extend_from_slice(&chunk[..n]);
                        if let Some(answer) = parse(&c.input) {
                            c.output = answer;
                            c.answered = true;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => c.answered = true,
                }
            }
            if c.answered && c.written < c.output.len() {
                match c.stream.write(&c.output[c.written..]) {
                    Ok(n) => c.written += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => c.written = c.output.len(),
                }
            }
        }
        conns.retain(|c| !(c.answered && c.written >= c.output.len()));
        if accept {
            loop {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if stream.set_nonblocking(true).is_ok() {
                            conns.push(Conn { stream, input: Vec::new(), output: Vec::new(), written: 0, answered: false });
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        eprintln!("rusthello: accept: {}", e);
                        return 1;
                    }
                }
            }
        }
    }
}

#[cfg(not(target_os = "wasi"))]
fn serve_poll(_: TcpListener) -> i32 {
    eprintln!("rusthello: serve-poll needs WASI's poll_oneoff");
    2
}

const MAX_HEAD: usize = 8192;
const MAX_BODY: usize = 1 << 20;

/// parse returns the answer to the request at the start of buf, or None if
/// buf does not hold all of it yet.
fn parse(buf: &[u8]) -> Option<Vec<u8>> {
    let end = match buf.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => i,
        None if buf.len() > MAX_HEAD => return Some(response(431, b"request head too large\n")),
        None => return None,
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let parts: Vec<&str> = lines.next().unwrap_or("").split(' ').collect();
    if parts.len() != 3 || !parts[2].starts_with("HTTP/1.") {
        return Some(response(400, b"bad request line\n"));
    }
    let mut length = 0;
    for h in lines {
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                match v.trim().parse::<usize>() {
                    Ok(n) if n <= MAX_BODY => length = n,
                    _ => return Some(response(413, b"bad or too large Content-Length\n")),
                }
            } else if k.eq_ignore_ascii_case("transfer-encoding") {
                return Some(response(501, b"only Content-Length bodies\n"));
            }
        }
    }
    let body = &buf[end + 4..];
    if body.len() < length {
        return None;
    }
    let (status, answer) = route(parts[0], parts[1], &body[..length]);
    Some(response(status, &answer))
}

/// route answers a request.
fn route(method: &str, target: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    let text = |status: u16, s: String| (status, s.into_bytes());
    match (method, path) {
        ("GET", "/") => {
            let host = env::var("HOSTNAME").unwrap_or_else(|_| "somewhere".to_string());
            text(200, format!("hello from rust on {}\n", host))
        }
        ("GET", "/env") => match env::var(query) {
            Ok(v) => text(200, format!("{}\n", v)),
            Err(_) => text(404, "no such variable\n".to_string()),
        },
        ("GET", "/file") => match env::var("READ_FILE").map(fs::read) {
            Ok(Ok(b)) => (200, b),
            Ok(Err(e)) => text(500, format!("{}\n", e)),
            Err(_) => text(404, "READ_FILE is not set\n".to_string()),
        },
        ("POST", "/echo") => (200, body.to_vec()),
        (_, "/") | (_, "/env") | (_, "/file") | (_, "/echo") => text(405, "method not allowed\n".to_string()),
        _ => text(404, "not found\n".to_string()),
    }
}

fn response(status: u16, body: &[u8]) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        _ => "Not Implemented",
    };
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        status,
        reason,
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

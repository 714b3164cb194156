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
//!
//! The HTTP server answers one request per connection (Connection: close), one
//! connection at a time, with blocking std::net calls:
//!
//!     GET  /            "hello from rust on $HOSTNAME"
//!     GET  /env?NAME    the value of the environment variable NAME
//!     GET  /file        the contents of $READ_FILE
//!     POST /echo        the request body (Content-Length)

use std::collections::BTreeMap;
use std::env;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
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
        "serve" => serve(),
        other => {
            eprintln!("rusthello: unknown command {:?} (run, echo, cat, sleep, exit, panic, alloc, serve)", other);
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
        return serve_on(l);
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
    /// The fdstat of WASI preview 1; only the file type is looked at.
    #[repr(C)]
    pub struct FdStat {
        pub filetype: u8,
        pub flags: u16,
        pub rights_base: u64,
        pub rights_inheriting: u64,
    }

    pub const ERRNO_BADF: u16 = 8;
    pub const FILETYPE_SOCKET_STREAM: u8 = 6;

    #[link(wasm_import_module = "wasi_snapshot_preview1")]
    extern "C" {
        pub fn fd_fdstat_get(fd: u32, stat: *mut FdStat) -> u16;
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

fn serve() -> i32 {
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
    serve_on(listener)
}

fn serve_on(listener: TcpListener) -> i32 {
    println!("serving HTTP");
    io::stdout().flush().ok();
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

const MAX_HEAD: usize = 8192;
const MAX_BODY: u64 = 1 << 20;

/// handle answers the one request of a connection.
fn handle(stream: TcpStream) -> io::Result<()> {
    // One stream for both (try_clone is unsupported on WASI).
    let mut r = BufReader::new(&stream);
    let mut w = &stream;
    let mut line = String::new();
    let mut head = 0;
    if r.by_ref().take(MAX_HEAD as u64).read_line(&mut line)? == 0 {
        return Ok(()); // closed without a request
    }
    head += line.len();
    let parts: Vec<&str> = line.split_whitespace().collect();
    if parts.len() != 3 || !parts[2].starts_with("HTTP/1.") {
        return respond(&mut w, 400, "bad request line\n");
    }
    let (method, target) = (parts[0].to_string(), parts[1].to_string());
    let mut length: u64 = 0;
    loop {
        let mut h = String::new();
        let n = r.by_ref().take((MAX_HEAD - head.min(MAX_HEAD)) as u64).read_line(&mut h)?;
        head += n;
        if n == 0 || !h.ends_with('\n') {
            return respond(&mut w, 431, "request head too large or cut short\n");
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                match v.trim().parse::<u64>() {
                    Ok(n) if n <= MAX_BODY => length = n,
                    _ => return respond(&mut w, 413, "bad or too large Content-Length\n"),
                }
            } else if k.eq_ignore_ascii_case("transfer-encoding") {
                return respond(&mut w, 501, "only Content-Length bodies\n");
            }
        }
    }
    let mut body = Vec::new();
    r.by_ref().take(length).read_to_end(&mut body)?;
    if (body.len() as u64) < length {
        return Ok(()); // the client went away
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target.as_str(), ""),
    };
    match (method.as_str(), path) {
        ("GET", "/") => {
            let host = env::var("HOSTNAME").unwrap_or_else(|_| "somewhere".to_string());
            respond(&mut w, 200, &format!("hello from rust on {}\n", host))
        }
        ("GET", "/env") => match env::var(query) {
            Ok(v) => respond(&mut w, 200, &format!("{}\n", v)),
            Err(_) => respond(&mut w, 404, "no such variable\n"),
        },
        ("GET", "/file") => match env::var("READ_FILE").map(fs::read) {
            Ok(Ok(b)) => respond_bytes(&mut w, 200, &b),
            Ok(Err(e)) => respond(&mut w, 500, &format!("{}\n", e)),
            Err(_) => respond(&mut w, 404, "READ_FILE is not set\n"),
        },
        ("POST", "/echo") => respond_bytes(&mut w, 200, &body),
        (_, "/") | (_, "/env") | (_, "/file") | (_, "/echo") => respond(&mut w, 405, "method not allowed\n"),
        _ => respond(&mut w, 404, "not found\n"),
    }
}

fn respond(w: &mut impl Write, status: u16, body: &str) -> io::Result<()> {
    respond_bytes(w, status, body.as_bytes())
}

fn respond_bytes(w: &mut impl Write, status: u16, body: &[u8]) -> io::Result<()> {
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
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        status,
        reason,
        body.len()
    );
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    w.write_all(&out)?;
    w.flush()
}

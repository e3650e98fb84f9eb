//! `siteboot-vm-relay HOST:PORT`: copies stdin to a TCP connection to `HOST:PORT` and the
//! connection back to stdout. QEMU's user network runs it once per guest connection
//! (`guestfwd=tcp:10.0.2.100:P-cmd:siteboot-vm-relay 127.0.0.1:H`), which, unlike a
//! `tcp:` chardev target, serves any number of concurrent connections.
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(target) = std::env::args().nth(1) else {
        eprintln!("usage: siteboot-vm-relay HOST:PORT");
        return ExitCode::from(2);
    };
    let stream = match TcpStream::connect(&target) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("siteboot-vm-relay: connect {target}: {e}");
            return ExitCode::from(1);
        }
    };
    let _ = stream.set_nodelay(true);
    let Ok(mut upstream) = stream.try_clone() else {
        return ExitCode::from(1);
    };
    // Guest -> service; the guest closing its side half-closes ours.
    let writer = std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let _ = std::io::copy(&mut stdin, &mut upstream);
        let _ = upstream.shutdown(Shutdown::Write);
    });
    // Service -> guest, until the service closes.
    let mut down = stream;
    let mut stdout = std::io::stdout().lock();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match down.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if stdout
                    .write_all(&buf[..n])
                    .and_then(|_| stdout.flush())
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    drop(writer);
    ExitCode::SUCCESS
}

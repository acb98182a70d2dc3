//! Baselines measured in the same run as the figure they are compared with, on the same disk
//! and the same loopback: what the hardware does with the same bytes when no broker is involved.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The raw disk: `total` bytes written sequentially into a new file in `chunk`-sized writes,
/// with an fdatasync every `sync_every_bytes` and one at the end.
pub fn disk(
    dir: &Path,
    total: u64,
    chunk: usize,
    sync_every_bytes: u64,
) -> Result<Duration, BoxError> {
    let path = dir.join("baseline-disk.bin");
    let f = std::fs::File::create(&path)?;
    let data = vec![b'x'; chunk.max(1)];
    let start = Instant::now();
    let (mut written, mut since_sync) = (0u64, 0u64);
    while written < total {
        f.write_all_at(&data, written)?;
        written += data.len() as u64;
        since_sync += data.len() as u64;
        if since_sync >= sync_every_bytes {
            f.sync_data()?;
            since_sync = 0;
        }
    }
    f.sync_data()?;
    let d = start.elapsed();
    drop(f);
    std::fs::remove_file(path)?;
    Ok(d)
}

/// Baseline of produce: the same bytes over one loopback TCP connection into a file, fdatasync
/// every `sync_every_bytes`.
pub fn socket_to_file(
    dir: &Path,
    total: u64,
    chunk: usize,
    sync_every_bytes: u64,
) -> Result<Duration, BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let path = dir.join("baseline-sink.bin");
    let sink_path = path.clone();
    let sink = std::thread::spawn(move || -> Result<(), String> {
        let (mut s, _) = listener.accept().map_err(|e| e.to_string())?;
        let f = std::fs::File::create(&sink_path).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 1 << 20];
        let (mut got, mut since_sync) = (0u64, 0u64);
        while got < total {
            let n = s.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            f.write_all_at(&buf[..n], got).map_err(|e| e.to_string())?;
            got += n as u64;
            since_sync += n as u64;
            if since_sync >= sync_every_bytes {
                f.sync_data().map_err(|e| e.to_string())?;
                since_sync = 0;
            }
        }
        f.sync_data().map_err(|e| e.to_string())?;
        s.write_all(b"k").map_err(|e| e.to_string())?;
        Ok(())
    });
    let mut c = TcpStream::connect(addr)?;
    let data = vec![b'x'; chunk];
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < total {
        c.write_all(&data)?;
        sent += chunk as u64;
    }
    let mut ack = [0u8; 1];
    c.read_exact(&mut ack)?;
    let d = start.elapsed();
    sink.join().map_err(|_| "sink panicked")??;
    std::fs::remove_file(path)?;
    Ok(d)
}

/// Baseline of consume: a page-cached file of `total` bytes sent over loopback with sendfile.
pub fn sendfile(dir: &Path, total: u64) -> Result<Duration, BoxError> {
    let path = dir.join("baseline-source.bin");
    {
        let mut f = std::fs::File::create(&path)?;
        let chunk = vec![b'x'; 1 << 20];
        let mut w = 0u64;
        while w < total {
            f.write_all(&chunk)?;
            w += chunk.len() as u64;
        }
    }
    // Read it once so it is in the page cache, as the broker's segment is.
    std::io::copy(&mut std::fs::File::open(&path)?, &mut std::io::sink())?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let reader = std::thread::spawn(move || -> u64 {
        let Ok((mut s, _)) = listener.accept() else {
            return 0;
        };
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0u64;
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            got += n as u64;
        }
        got
    });
    let c = TcpStream::connect(addr)?;
    let f = std::fs::File::open(&path)?;
    let start = Instant::now();
    let mut off: libc::off_t = 0;
    let len = f.metadata()?.len() as i64;
    while off < len {
        // SAFETY: valid descriptors and offset pointer for the duration of the call.
        let n =
            unsafe { libc::sendfile(c.as_raw_fd(), f.as_raw_fd(), &mut off, (len - off) as usize) };
        if n <= 0 {
            return Err(std::io::Error::last_os_error().into());
        }
    }
    drop(c);
    let got = reader.join().map_err(|_| "reader panicked")?;
    let d = start.elapsed();
    std::fs::remove_file(path)?;
    if got < total {
        return Err("baseline reader got fewer bytes".into());
    }
    Ok(d)
}

//! The raw file capability of an executable: the `security.capability`
//! extended attribute, read with `getxattr(2)` (the standard library has no
//! call for it and `/proc` does not show it). podpath reads its own
//! (`/proc/self/exe`) to say why the capture socket was refused; the bytes
//! are decoded by the caller.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Largest value the kernel stores: `struct vfs_ns_cap_data` (revision 3).
const MAX_LEN: usize = 24;

/// The `security.capability` attribute of `path` (symbolic links followed,
/// so `/proc/self/exe` names the running binary), or `None` when the file
/// has none. Values longer than 24 bytes are cut to 24 (the kernel writes
/// no such value).
pub fn file_capability(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
    let name = c"security.capability";
    let mut buf = [0u8; MAX_LEN];
    // SAFETY: `path` and `name` are NUL-terminated strings that outlive the
    // call; `buf` is valid for writes of `buf.len()` bytes, and the kernel
    // writes at most that many.
    let n = unsafe {
        libc::getxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n >= 0 {
        let n = usize::try_from(n).unwrap_or(0).min(buf.len());
        return Ok(Some(buf[..n].to_vec()));
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        // ENODATA: no such attribute. ENOTSUP: the filesystem keeps no
        // extended attributes, so no file capability either.
        Some(libc::ENODATA) | Some(libc::ENOTSUP) => Ok(None),
        // ERANGE: longer than any value the kernel writes.
        Some(libc::ERANGE) => Ok(Some(buf.to_vec())),
        _ => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_the_attribute_has_none() {
        let dir = std::env::temp_dir().join(format!("afpacket-fcaps-{}", std::process::id()));
        std::fs::write(&dir, b"x").unwrap();
        let got = file_capability(&dir);
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(got.unwrap(), None);
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let err = file_capability(Path::new("/nonexistent/podpath-fcaps")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn a_nul_in_the_path_is_an_error() {
        let err = file_capability(Path::new("a\0b")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}

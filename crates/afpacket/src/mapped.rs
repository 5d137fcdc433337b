//! A regular file mapped read-only into the process, for reading capture
//! files without copying them through `read(2)`. It lives in this crate
//! because mapping a file is `unsafe` (memmap2's `Mmap::map`), and this crate
//! is podpath's one place for `unsafe`.

use std::fs::File;
use std::io;
use std::ops::Deref;

/// The bytes of a regular file, mapped read-only and shared (`MAP_SHARED`).
#[derive(Debug)]
pub struct MappedFile {
    map: memmap2::Mmap,
}

impl MappedFile {
    /// Maps `file` when it is a regular, non-empty file; `Ok(None)` for
    /// anything else (a pipe, standard input, a character device: they can
    /// only be read, and an empty file cannot be mapped), which the caller
    /// then reads.
    pub fn map(file: &File) -> io::Result<Option<MappedFile>> {
        let meta = file.metadata()?;
        if !meta.file_type().is_file() || meta.len() == 0 {
            return Ok(None);
        }
        // SAFETY: the mapping is read-only and lives as long as `map`, which
        // the returned value owns; the bytes are only ever read as `&[u8]`
        // and treated as untrusted input (every length in them is checked
        // against the slice, so bytes that change under us can yield wrong
        // values but no out-of-bounds access). What the type system cannot
        // rule out is another process changing the file while it is mapped:
        // if the file is cut shorter, reading the pages past the new end
        // raises SIGBUS. Capture files are written by appending (tcpdump,
        // `-C` rotation opens a new file), and a file that grows is read up
        // to its length at the time of mapping, as with `read(2)`.
        let map = unsafe { memmap2::MmapOptions::new().map(file)? };
        // The file is read front to back once: let the kernel read ahead
        // aggressively and drop pages behind. Only advice: a refusal changes
        // nothing but speed.
        let _ = map.advise(memmap2::Advice::Sequential);
        Ok(Some(MappedFile { map }))
    }

    /// Unmaps the pages wholly before `end` from the process
    /// (`MADV_DONTNEED`): they stay in the page cache, and reading them again
    /// maps them back. A file read front to back then keeps only the part
    /// being read resident, not all of it (the resident set counts mapped
    /// pages; a memory limit sizes the tables from it). Only advice: a
    /// refusal changes nothing but memory.
    pub fn release_before(&self, end: usize) {
        let page = page_size();
        let end = end.min(self.map.len()) / page * page;
        if end == 0 {
            return;
        }
        // SAFETY: MADV_DONTNEED on a shared, read-only file mapping changes
        // no byte that can be read through it: the next access faults the
        // page in again from the file (madvise(2): "repopulate the memory
        // contents from the up-to-date contents of the underlying mapped
        // file"), so slices borrowed from the mapping stay valid. The range
        // lies inside the mapping and starts at its (page-aligned) start.
        let _ = unsafe {
            self.map
                .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, 0, end)
        };
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf reads a constant of the system; no memory is involved.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size)
        .ok()
        .filter(|&s| s > 0)
        .unwrap_or(4096)
}

impl Deref for MappedFile {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.map
    }
}

impl AsRef<[u8]> for MappedFile {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn released_pages_read_back_the_same() {
        let dir = std::env::temp_dir().join(format!("afpacket-release-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.bin");
        let bytes: Vec<u8> = (0..3 * 4096 + 100).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let mapped = MappedFile::map(&File::open(&path).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(&mapped[..], &bytes[..]);
        for end in [0, 100, 4096, 2 * 4096 + 7, bytes.len(), usize::MAX] {
            mapped.release_before(end);
            assert_eq!(&mapped[..], &bytes[..], "after releasing before {end}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn maps_a_regular_file_and_declines_empty_files_and_pipes() {
        let dir = std::env::temp_dir().join(format!("afpacket-mapped-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.bin");
        File::create(&path)
            .unwrap()
            .write_all(b"\xd4\xc3\xb2\xa1 some bytes")
            .unwrap();
        let mapped = MappedFile::map(&File::open(&path).unwrap()).unwrap();
        assert_eq!(mapped.as_deref(), Some(&b"\xd4\xc3\xb2\xa1 some bytes"[..]));

        let empty = dir.join("empty.bin");
        File::create(&empty).unwrap();
        assert!(MappedFile::map(&File::open(&empty).unwrap())
            .unwrap()
            .is_none());

        // A character device stands for what cannot be mapped.
        let null = File::open("/dev/null").unwrap();
        assert!(MappedFile::map(&null).unwrap().is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

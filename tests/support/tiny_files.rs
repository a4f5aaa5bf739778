//! Archives of many tiny image files, for the memory tests.

/// Writes `n` image files to `w`, file `i` named after `i` (a UUID-shaped
/// name, as the server's are) and holding `i`'s eight little-endian bytes.
pub fn write_tiny_images<W: std::io::Write>(w: &mut lvbak::ArchiveWriter<W>, n: usize) {
    for i in 0..n {
        let name = format!("{i:08x}-0000-4000-8000-{i:012x}.png");
        let mut f = w.file(lvbak::Bucket::Images, &name).unwrap();
        f.write_bytes(&i.to_le_bytes()).unwrap();
        f.finish().unwrap();
    }
}

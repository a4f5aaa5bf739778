//! Archives of many tiny image files, for the memory tests.
#![allow(dead_code)] // each test binary uses a part

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

/// An archive of `n` tiny image files ([`write_tiny_images`]) and nothing
/// else but the manifest and the trailer with its digests.
pub fn tiny_image_archive(n: usize) -> Vec<u8> {
    let m = lvbak::Manifest::new("aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", 1_700_000_000);
    let mut w = lvbak::ArchiveWriter::new(Vec::new(), &m, lvbak::WriteOptions::default()).unwrap();
    write_tiny_images(&mut w, n);
    w.finish().unwrap().0
}

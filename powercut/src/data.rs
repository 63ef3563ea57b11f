//! A file's bytes, in pages shared between its current and its durable state.
//!
//! A sync copies the current state into the durable one. Copying the bytes would make every
//! `fdatasync` of a log cost as much as the whole file; sharing pages makes it a copy of one
//! pointer per page, and a later write copies only the pages it changes.

use std::sync::Arc;

/// Bytes per page.
const PAGE: usize = 4096;

/// One page of a file; a hole reads as zeros.
type Page = Option<Arc<[u8; PAGE]>>;

/// The contents of a file.
#[derive(Debug, Clone, Default)]
pub struct Data {
    len: u64,
    pages: Vec<Page>,
}

impl Data {
    /// The size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Up to `size` bytes from `offset`; fewer at the end of the file.
    pub fn read(&self, offset: u64, size: u32) -> Vec<u8> {
        let end = self.len.min(offset.saturating_add(u64::from(size)));
        let mut out =
            Vec::with_capacity(usize::try_from(end.saturating_sub(offset)).expect("at most `size`, a u32"));
        let mut at = offset;
        while at < end {
            let (index, within) = split(at);
            let take = (PAGE - within).min(usize::try_from(end - at).unwrap_or(usize::MAX));
            match self.pages.get(index).and_then(Option::as_ref) {
                Some(page) => out.extend_from_slice(&page[within..within + take]),
                None => out.resize(out.len() + take, 0),
            }
            at += take as u64;
        }
        out
    }

    /// Writes `bytes` at `offset`, growing the file if they reach past its end.
    pub fn write(&mut self, offset: u64, bytes: &[u8]) {
        let end = offset + bytes.len() as u64;
        if end > self.len {
            self.set_len(end);
        }
        let mut written = 0;
        while written < bytes.len() {
            let (index, within) = split(offset + written as u64);
            let take = (PAGE - within).min(bytes.len() - written);
            let page = self.pages[index].get_or_insert_with(|| Arc::new([0; PAGE]));
            // Copies the page only if the durable state still shares it.
            Arc::make_mut(page)[within..within + take].copy_from_slice(&bytes[written..written + take]);
            written += take;
        }
    }

    /// Cuts or extends the file to `len` bytes; an extension reads as zeros.
    pub fn set_len(&mut self, len: u64) {
        if len < self.len {
            let (index, within) = split(len);
            self.pages.truncate(index + usize::from(within > 0));
            // The cut-off bytes of the last page must read as zeros if the file grows again.
            if let Some(Some(page)) = self.pages.get_mut(index).filter(|_| within > 0) {
                Arc::make_mut(page)[within..].fill(0);
            }
        } else {
            self.pages.resize(
                usize::try_from(len.div_ceil(PAGE as u64))
                    .expect("a file in memory has fewer pages than usize::MAX"),
                None,
            );
        }
        self.len = len;
    }
}

/// The page holding byte `at`, and where in it.
fn split(at: u64) -> (usize, usize) {
    let page = usize::try_from(at / PAGE as u64).expect("a file in memory has fewer pages than usize::MAX");
    (page, usize::try_from(at % PAGE as u64).expect("below PAGE"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_across_pages_and_holes_read_back() {
        let mut data = Data::default();
        data.write(PAGE as u64 * 3 - 2, b"abcd");
        assert_eq!(data.len(), PAGE as u64 * 3 + 2);
        assert_eq!(data.read(PAGE as u64 * 3 - 3, 10), b"\0abcd");
        assert_eq!(data.read(10, 4), [0; 4], "a hole reads as zeros");
        assert!(data.read(data.len(), 10).is_empty());
    }

    #[test]
    fn a_copy_keeps_its_bytes_when_the_original_is_written() {
        let mut current = Data::default();
        current.write(0, &[1; PAGE * 2]);
        let durable = current.clone();
        current.write(PAGE as u64 + 5, b"new");
        assert_eq!(durable.read(PAGE as u64 + 5, 3), [1, 1, 1]);
        assert_eq!(current.read(PAGE as u64 + 5, 3), b"new");
    }

    #[test]
    fn shrinking_then_growing_reads_zeros_past_the_cut() {
        let mut data = Data::default();
        data.write(0, &[7; PAGE + 100]);
        let durable = data.clone();
        data.set_len(10);
        data.set_len(PAGE as u64 + 100);
        assert_eq!(data.read(0, 11), [7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 0]);
        assert_eq!(data.read(PAGE as u64, 100), [0; 100]);
        assert_eq!(durable.read(PAGE as u64 + 99, 1), [7], "the shrink did not reach the copy");
    }
}

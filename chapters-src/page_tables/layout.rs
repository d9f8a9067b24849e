//! The shape of this machine's page tables, worked out from what the kernel tells a process: the
//! page size (`sysconf`), the size of one entry (8 bytes on every 64-bit Linux architecture), and
//! how far up the address space reaches (the highest address `mmap` will honour as a hint).

use anyhow::{bail, Result};
use nix::sys::mman::{mmap_anonymous, munmap, MapFlags, ProtFlags};
use std::num::NonZeroUsize;
use vmbook::procinfo::page_size;

/// How a virtual address is split: the page offset, then one index per level.
#[derive(Clone, Debug)]
pub struct Layout {
    pub page: usize,
    /// Bits of the page offset: log2(page size).
    pub offset_bits: u32,
    /// Bits of one index: log2(entries per table), entries = page size / 8.
    pub index_bits: u32,
    /// Bits of a user address: the highest address mmap honours is below 2^user_bits.
    pub user_bits: u32,
    /// Bits the page tables translate (x86-64 and RISC-V: one more than user space, whose half it is).
    pub translated_bits: u32,
    pub levels: u32,
}

/// The size of one page-table entry: 64 bits on every 64-bit architecture Linux supports.
pub const ENTRY_BYTES: usize = std::mem::size_of::<u64>();

// ANCHOR: user_bits
/// The number of bits a user-space address can have here. A hint to mmap is honoured only when it
/// lies inside the user address space, so the highest power of two that mmap honours (or beats)
/// marks its end. On x86-64 with five-level paging, only a hint above 2^47 unlocks the upper part.
pub fn user_address_bits() -> Result<u32> {
    let len = NonZeroUsize::new(page_size()).expect("a page is not empty");
    for bit in (32..63u32).rev() {
        let hint = NonZeroUsize::new(1usize << bit).expect("non-zero");
        // SAFETY: without MAP_FIXED the kernel never replaces an existing mapping; the page is
        // inaccessible (PROT_NONE) and unmapped again right below.
        let got = unsafe {
            mmap_anonymous(
                Some(hint),
                len,
                ProtFlags::PROT_NONE,
                MapFlags::MAP_PRIVATE | MapFlags::MAP_NORESERVE,
            )
        };
        if let Ok(ptr) = got {
            let addr = ptr.as_ptr() as usize;
            // SAFETY: the page was just mapped by us and nothing refers to it.
            unsafe { munmap(ptr, len.get()) }.ok();
            if addr >= hint.get() {
                return Ok(bit + 1);
            }
        }
    }
    bail!("mmap honoured no hint above 2^32: cannot tell how wide user addresses are")
}
// ANCHOR_END: user_bits

impl Layout {
    /// The layout of this machine; an error on an architecture whose split this program does not know.
    pub fn detect() -> Result<Layout> {
        let page = page_size();
        let offset_bits = page.trailing_zeros();
        let index_bits = (page / ENTRY_BYTES).trailing_zeros();
        let user_bits = user_address_bits()?;
        // x86-64 and RISC-V translate the whole address through one tree, user space being its
        // lower half; arm64 gives user space a tree of its own (TTBR0), the kernel another.
        let translated_bits = match std::env::consts::ARCH {
            "x86_64" | "riscv64" => user_bits + 1,
            "aarch64" => user_bits,
            other => bail!("this program does not know how {other} splits its addresses"),
        };
        let levels = (translated_bits - offset_bits).div_ceil(index_bits);
        Ok(Layout {
            page,
            offset_bits,
            index_bits,
            user_bits,
            translated_bits,
            levels,
        })
    }

    /// Entries in one table.
    pub fn entries(&self) -> usize {
        1 << self.index_bits
    }

    /// What one entry at `level` maps (level 1 is the last table, whose entries map pages).
    pub fn span(&self, level: u32) -> u64 {
        1u64 << (self.offset_bits + (level - 1) * self.index_bits)
    }

    /// Linux's name for the table at `level`: the top is always the PGD; with fewer than five
    /// levels the kernel folds P4D first, then PUD, then PMD.
    pub fn name(&self, level: u32) -> &'static str {
        if level == self.levels {
            return "PGD";
        }
        match level {
            1 => "PTE",
            2 => "PMD",
            3 => "PUD",
            _ => "P4D",
        }
    }

    /// The bits of an address that index the table at `level`: (highest, lowest).
    pub fn bits(&self, level: u32) -> (u32, u32) {
        let low = self.offset_bits + (level - 1) * self.index_bits;
        let high = (low + self.index_bits).min(self.translated_bits) - 1;
        (high, low)
    }

    /// The index into the table at `level` that the walk for `addr` uses.
    pub fn index(&self, addr: usize, level: u32) -> usize {
        let (high, low) = self.bits(level);
        (addr >> low) & ((1usize << (high - low + 1)) - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(page: usize, translated_bits: u32) -> Layout {
        let offset_bits = page.trailing_zeros();
        let index_bits = (page / ENTRY_BYTES).trailing_zeros();
        Layout {
            page,
            offset_bits,
            index_bits,
            user_bits: translated_bits,
            translated_bits,
            levels: (translated_bits - offset_bits).div_ceil(index_bits),
        }
    }

    #[test]
    fn levels_follow_from_page_size_and_width() {
        assert_eq!(layout(4096, 48).levels, 4); // x86-64
        assert_eq!(layout(4096, 57).levels, 5); // x86-64 with LA57
        assert_eq!(layout(4096, 39).levels, 3); // arm64 39-bit
        assert_eq!(layout(16384, 47).levels, 3); // arm64 16 KiB pages
        assert_eq!(layout(65536, 42).levels, 2); // arm64 64 KiB pages, 42-bit
        assert_eq!(layout(65536, 48).levels, 3);
    }

    #[test]
    fn an_address_splits_into_indices_and_offset() {
        let l = layout(4096, 48);
        let addr = 0x7ffd_5a3c_1e2c_usize;
        let mut rebuilt = addr & 0xfff;
        for level in 1..=l.levels {
            rebuilt |= l.index(addr, level) << l.bits(level).1;
        }
        assert_eq!(rebuilt, addr);
        assert_eq!(l.bits(4), (47, 39));
        assert_eq!(l.name(4), "PGD");
        assert_eq!(l.name(2), "PMD");
        assert_eq!(l.span(2), 2 << 20);
    }
}

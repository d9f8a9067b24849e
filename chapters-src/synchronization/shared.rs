//! A typed view of a shared anonymous mapping, which every experiment puts its page in.

use anyhow::Result;
use std::marker::PhantomData;
use vmbook::Mapping;

/// A `T` at the start of a fresh `MAP_SHARED | MAP_ANONYMOUS` mapping, visible to forked children.
pub struct Shared<T> {
    map: Mapping,
    _t: PhantomData<T>,
}

impl<T> Shared<T> {
    /// Maps zeroed shared memory for a `T`. Only used with `repr(C)` types made of atomics,
    /// integers and libc's pthread/semaphore types, for which all-zero bytes are a valid value.
    pub fn new() -> Result<Self> {
        let len = std::mem::size_of::<T>().max(vmbook::procinfo::page_size());
        Ok(Shared {
            map: Mapping::shared(len)?,
            _t: PhantomData,
        })
    }
}

impl<T> std::ops::Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the mapping is page-aligned, at least size_of::<T>() long, lives as long as self,
        // and holds a valid T (zeroed; see `new`). Processes share it only through atomics,
        // pthread/semaphore calls, or the deliberately racy volatile accesses the chapter shows.
        unsafe { &*(self.map.as_ptr() as *const T) }
    }
}

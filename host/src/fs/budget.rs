//! The memory budget shared by prefetch buffers and write buffers, and the
//! cap on concurrent data requests.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Memory is counted in units of this many bytes.
const UNIT: u64 = 64 * 1024;

/// Bytes of memory that buffers may hold at once, over the whole mount.
#[derive(Clone)]
pub(crate) struct Budget {
    sem: Arc<Semaphore>,
    units: u32,
}

/// Memory held by one buffer; given back when dropped.
pub(crate) struct Reservation {
    _permit: OwnedSemaphorePermit,
}

impl Budget {
    pub fn new(bytes: u64) -> Self {
        let units = (bytes / UNIT).clamp(16, u64::from(u32::MAX >> 4)) as u32;
        Self {
            sem: Arc::new(Semaphore::new(units as usize)),
            units,
        }
    }

    fn units_for(&self, bytes: u64) -> u32 {
        (bytes.div_ceil(UNIT).max(1)).min(u64::from(self.units)) as u32
    }

    /// Waits until `bytes` fit in the budget (a request larger than the
    /// whole budget waits for all of it).
    pub async fn reserve(&self, bytes: u64) -> Reservation {
        let permit = self
            .sem
            .clone()
            .acquire_many_owned(self.units_for(bytes))
            .await
            .expect("budget semaphore never closes");
        Reservation { _permit: permit }
    }

    /// Bytes currently free (for tests and diagnostics).
    pub fn available(&self) -> u64 {
        self.sem.available_permits() as u64 * UNIT
    }
}

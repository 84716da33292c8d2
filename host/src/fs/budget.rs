//! The memory budget shared by prefetch buffers and write buffers, and
//! the pool that recycles those buffers.
//!
//! The budget a user configures bounds the whole mount process, so only
//! part of it goes to buffers counted one by one: the rest is left for
//! memory that is not (connection read buffers, FUSE request buffers,
//! copies on their way to the kernel, the allocator's bookkeeping, code).
//!
//! Large buffers are recycled rather than freed: a freshly mapped buffer
//! costs a page fault per 4 KiB on first use, which at hundreds of MiB/s
//! is most of the mount's CPU time. An idle buffer in the pool keeps its
//! reservation, so pooled memory is counted like memory in use; a task
//! that needs memory takes an idle buffer of its size or has the idle
//! buffers freed, and the pool holds at most a quarter of the budget.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// Memory is counted in units of this many bytes.
const UNIT: u64 = 64 * 1024;

/// Buffers smaller than this are not recycled (they come from the
/// allocator's arenas, already resident).
const MIN_POOLED: usize = 1024 * 1024;

/// Most memory left outside the buffers. What is not counted is mostly
/// fixed (about 50 MiB measured with four readers at full speed), so it
/// need not grow with the budget.
const MAX_HEADROOM: u64 = 96 * 1024 * 1024;

/// The part of a process memory budget of `bytes` that buffers may hold:
/// three eighths (at most 96 MiB) is headroom for everything else.
pub(crate) fn buffer_share(bytes: u64) -> u64 {
    bytes - (bytes / 8 * 3).min(MAX_HEADROOM)
}

/// Bytes of memory that buffers may hold at once, over the whole mount.
#[derive(Clone)]
pub(crate) struct Budget {
    inner: Arc<Inner>,
}

struct Inner {
    sem: Arc<Semaphore>,
    units: u32,
    /// Idle buffers, each still holding its reservation.
    pool: Mutex<Vec<Idle>>,
    /// Signalled when a buffer goes idle, for tasks waiting for memory.
    returned: Notify,
}

struct Idle {
    buf: Vec<u8>,
    memory: Reservation,
}

/// Memory held by one buffer; given back when dropped.
pub(crate) struct Reservation {
    permit: OwnedSemaphorePermit,
}

/// A buffer of fixed capacity whose memory is reserved from the budget;
/// back to the pool (or freed) when dropped.
pub(crate) struct PoolBuf {
    buf: Vec<u8>,
    memory: Option<Reservation>,
    budget: Arc<Inner>,
}

impl Inner {
    fn units_for(&self, bytes: u64) -> u32 {
        (bytes.div_ceil(UNIT).max(1)).min(u64::from(self.units)) as u32
    }

    /// Frees every idle buffer, giving its memory back to the budget;
    /// `false` if there was none.
    fn drain_pool(&self) -> bool {
        let idle = std::mem::take(&mut *self.pool.lock().unwrap_or_else(|p| p.into_inner()));
        !idle.is_empty()
    }

    fn take_idle(&self, size: usize) -> Option<Idle> {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        let at = pool.iter().position(|i| i.buf.capacity() == size)?;
        Some(pool.swap_remove(at))
    }

    /// Memory for `bytes`: an idle buffer of capacity `recycle` if there
    /// is one, else a new reservation (idle buffers of other sizes are
    /// freed for it when the budget is short).
    async fn obtain(&self, bytes: u64, recycle: Option<usize>) -> (Option<Vec<u8>>, Reservation) {
        let n = self.units_for(bytes);
        // Waiting keeps its place in the semaphore's queue across wakeups.
        let acquire = self.sem.clone().acquire_many_owned(n);
        tokio::pin!(acquire);
        // Bounded: each round either returns, or frees idle buffers (which
        // lets the semaphore make progress), or waits for a change.
        loop {
            let notified = self.returned.notified();
            if let Some(idle) = recycle.and_then(|size| self.take_idle(size)) {
                return (Some(idle.buf), idle.memory);
            }
            if let Ok(permit) = self.sem.clone().try_acquire_many_owned(n) {
                return (None, Reservation { permit });
            }
            if self.drain_pool() {
                continue;
            }
            tokio::select! {
                permit = &mut acquire => {
                    let permit = permit.expect("budget semaphore never closes");
                    return (None, Reservation { permit });
                }
                () = notified => {}
            }
        }
    }

    /// Budget held by idle buffers.
    fn pooled_bytes(pool: &[Idle]) -> u64 {
        pool.iter().map(|i| u64::from(i.memory.units())).sum::<u64>() * UNIT
    }
}

impl Budget {
    /// A budget of `bytes` for buffers (see [`buffer_share`]).
    pub fn new(bytes: u64) -> Self {
        let units = (bytes / UNIT).clamp(16, u64::from(u32::MAX >> 4)) as u32;
        Self {
            inner: Arc::new(Inner {
                sem: Arc::new(Semaphore::new(units as usize)),
                units,
                pool: Mutex::new(Vec::new()),
                returned: Notify::new(),
            }),
        }
    }

    /// Waits until `bytes` fit in the budget (a request larger than the
    /// whole budget waits for all of it). Reserve before allocating, so
    /// memory in use never runs ahead of the count.
    pub async fn reserve(&self, bytes: u64) -> Reservation {
        self.inner.obtain(bytes, None).await.1
    }

    /// An empty buffer of exactly `size` bytes' capacity, recycled when
    /// one is idle, else reserved and allocated.
    pub async fn buffer(&self, size: usize) -> PoolBuf {
        let (buf, memory) = match self.inner.obtain(size as u64, Some(size)).await {
            (Some(buf), memory) => (buf, memory),
            (None, memory) => (Vec::with_capacity(size), memory),
        };
        PoolBuf {
            buf,
            memory: Some(memory),
            budget: self.inner.clone(),
        }
    }

    /// Bytes buffers may hold in all.
    pub fn capacity(&self) -> u64 {
        u64::from(self.inner.units) * UNIT
    }

    /// Bytes not in use right now (idle pooled buffers count as free:
    /// they are given back on demand).
    pub fn available(&self) -> u64 {
        let pool = self.inner.pool.lock().unwrap_or_else(|p| p.into_inner());
        self.inner.sem.available_permits() as u64 * UNIT + Inner::pooled_bytes(&pool)
    }
}

impl Reservation {
    fn units(&self) -> u32 {
        self.permit.num_permits() as u32
    }
}

impl PoolBuf {
    /// Room left; the buffer never grows past its reserved capacity.
    pub fn room(&self) -> usize {
        self.buf.capacity() - self.buf.len()
    }

    /// Appends as much of `data` as fits; returns how much did.
    pub fn fill(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.room());
        self.buf.extend_from_slice(&data[..n]);
        n
    }

    pub fn freeze(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for PoolBuf {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for PoolBuf {
    fn drop(&mut self) {
        let Some(memory) = self.memory.take() else { return };
        let b = &self.budget;
        if self.buf.capacity() < MIN_POOLED {
            // Small buffers are cheap to allocate; freed, so the pool stays
            // a short list of large ones.
            return;
        }
        {
            let mut pool = b.pool.lock().unwrap_or_else(|p| p.into_inner());
            let cap = u64::from(b.units) * UNIT / 4;
            if Inner::pooled_bytes(&pool) + u64::from(memory.units()) * UNIT > cap {
                // Freed: the reservation goes back to the semaphore.
                return;
            }
            let mut buf = std::mem::take(&mut self.buf);
            buf.clear();
            pool.push(Idle { buf, memory });
        }
        b.returned.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn buffers_get_the_budget_less_bounded_headroom() {
        assert_eq!(buffer_share(16 * MIB), 10 * MIB);
        assert_eq!(buffer_share(256 * MIB), 160 * MIB);
        assert_eq!(buffer_share(1024 * MIB), 928 * MIB);
    }

    #[tokio::test]
    async fn pooled_buffers_are_recycled_and_given_up_for_a_waiter() {
        let budget = Budget::new(8 * MIB);
        let mut a = budget.buffer(MIB as usize).await;
        assert_eq!(a.fill(&vec![1u8; 2 * MIB as usize]), MIB as usize, "never grows");
        let ptr = a.as_ref().as_ptr();
        drop(a);
        assert_eq!(budget.available(), 8 * MIB, "an idle buffer counts as free");
        let b = budget.buffer(MIB as usize).await;
        assert_eq!(b.as_ref().as_ptr(), ptr, "recycled");
        drop(budget.buffer(4096).await);
        assert_eq!(budget.inner.pool.lock().unwrap().len(), 0, "small buffers are freed");
        assert!(b.as_ref().is_empty());
        drop(b);
        // The pool holds 1 MiB; a reservation of the whole budget gets it.
        let all = tokio::time::timeout(std::time::Duration::from_secs(5), budget.reserve(8 * MIB))
            .await
            .expect("idle buffers give way");
        drop(all);
        assert_eq!(budget.available(), 8 * MIB);
    }
}

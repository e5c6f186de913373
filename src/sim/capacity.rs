//! The capacity model: at most `slots` requests decode at once, the rest wait in FIFO order.
//!
//! A hand-rolled queue rather than a semaphore because the limit changes live (`PATCH /control`)
//! and `/metrics` needs exact running and waiting counts, cancelled waiters included.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

/// Decode slots shared by every request of one simulator.
#[derive(Debug)]
pub struct Slots {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// 0 = unlimited.
    limit: u32,
    running: u32,
    queue: VecDeque<(u64, oneshot::Sender<()>)>,
    next_ticket: u64,
}

impl Inner {
    fn has_room(&self) -> bool {
        self.limit == 0 || self.running < self.limit
    }

    /// Hands free slots to the oldest waiters.
    fn grant(&mut self) {
        while self.has_room() {
            let Some((_, tx)) = self.queue.pop_front() else {
                break;
            };
            self.running += 1;
            if tx.send(()).is_err() {
                self.running -= 1;
            }
        }
    }
}

impl Slots {
    /// Slots with this limit (0 = unlimited).
    pub fn new(limit: u32) -> Arc<Slots> {
        Arc::new(Slots {
            inner: Mutex::new(Inner {
                limit,
                running: 0,
                queue: VecDeque::new(),
                next_ticket: 0,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves consistent counters behind; carry on.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Requests decoding now.
    pub fn running(&self) -> u32 {
        self.lock().running
    }

    /// Requests waiting for a slot.
    pub fn waiting(&self) -> u32 {
        u32::try_from(self.lock().queue.len()).unwrap_or(u32::MAX)
    }

    /// The limit (0 = unlimited).
    pub fn limit(&self) -> u32 {
        self.lock().limit
    }

    /// Changes the limit. Running requests keep their slots; waiters are admitted if room grew.
    pub fn set_limit(&self, limit: u32) {
        let mut g = self.lock();
        g.limit = limit;
        g.grant();
    }

    /// Waits for a slot, first come first served. Dropping the future leaves the queue.
    pub async fn acquire(self: &Arc<Self>) -> SlotGuard {
        let (ticket, rx) = {
            let mut g = self.lock();
            if g.queue.is_empty() && g.has_room() {
                g.running += 1;
                return SlotGuard {
                    slots: Arc::clone(self),
                };
            }
            let ticket = g.next_ticket;
            g.next_ticket += 1;
            let (tx, rx) = oneshot::channel();
            g.queue.push_back((ticket, tx));
            (ticket, rx)
        };
        let mut waiter = Waiter {
            slots: Arc::clone(self),
            ticket,
            rx,
            done: false,
        };
        if (&mut waiter.rx).await.is_err() {
            // The sender is only dropped after a send or with the whole queue; count it as taken.
            self.lock().running += 1;
        }
        waiter.done = true;
        SlotGuard {
            slots: Arc::clone(self),
        }
    }
}

/// A queued request; on drop before admission it leaves the queue (or gives back a slot it was
/// granted but never saw).
struct Waiter {
    slots: Arc<Slots>,
    ticket: u64,
    rx: oneshot::Receiver<()>,
    done: bool,
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut g = self.slots.lock();
        if let Some(pos) = g.queue.iter().position(|(t, _)| *t == self.ticket) {
            g.queue.remove(pos);
        } else if self.rx.try_recv().is_ok() {
            g.running -= 1;
            g.grant();
        }
    }
}

/// A held decode slot; dropping it admits the next waiter.
#[derive(Debug)]
pub struct SlotGuard {
    slots: Arc<Slots>,
}

impl SlotGuard {
    /// Requests decoding now, this one included.
    pub fn running(&self) -> u32 {
        self.slots.running()
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let mut g = self.slots.lock();
        g.running = g.running.saturating_sub(1);
        g.grant();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn fifo_admission_and_counts() {
        let s = Slots::new(2);
        let a = s.acquire().await;
        let b = s.acquire().await;
        assert_eq!((s.running(), s.waiting()), (2, 0));

        let s2 = Arc::clone(&s);
        let c = tokio::spawn(async move { s2.acquire().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let s3 = Arc::clone(&s);
        let d = tokio::spawn(async move { s3.acquire().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!((s.running(), s.waiting()), (2, 2));

        drop(a);
        let c = c.await.unwrap();
        assert_eq!((s.running(), s.waiting()), (2, 1));
        assert!(!d.is_finished());
        drop(b);
        let d = d.await.unwrap();
        assert_eq!(d.running(), 2);
        drop((c, d));
        assert_eq!((s.running(), s.waiting()), (0, 0));
    }

    #[tokio::test]
    async fn cancelled_waiter_leaves_the_queue() {
        let s = Slots::new(1);
        let a = s.acquire().await;
        let s2 = Arc::clone(&s);
        let w = tokio::spawn(async move { s2.acquire().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(s.waiting(), 1);
        w.abort();
        let _ = w.await;
        assert_eq!(s.waiting(), 0);
        drop(a);
        assert_eq!(s.running(), 0);
    }

    #[tokio::test]
    async fn raising_the_limit_admits_waiters_and_zero_is_unlimited() {
        let s = Slots::new(1);
        let _a = s.acquire().await;
        let s2 = Arc::clone(&s);
        let w = tokio::spawn(async move { s2.acquire().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        s.set_limit(0);
        let _b = w.await.unwrap();
        let _c = s.acquire().await;
        assert_eq!((s.running(), s.waiting(), s.limit()), (3, 0, 0));
    }
}

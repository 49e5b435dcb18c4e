//! Work that arrives together is done together. Callers submit items; a
//! task takes whatever is waiting (up to `max` items) whenever one of
//! `in_flight` slots is free, and hands them to `work` as one group on a
//! task of its own. Each caller gets its own item's answer.
//!
//! A caller waits for its item to be taken into a group at most `wait`.
//! One that gives up first, or whose future is dropped (a deadline, a
//! client gone), leaves its item out of every group; whichever of the
//! caller and the group moves first decides ([`Claim`]), so an item taken
//! just as its caller gives up is done and its caller waits for the answer.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU8, Ordering},
    },
    time::Duration,
};

use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::Instrument;

/// A handle on the task that forms the groups; the task ends once every
/// handle is gone and what was queued is done.
#[derive(Debug)]
pub struct Groups<T, R> {
    jobs: mpsc::Sender<Job<T, R>>,
    wait: Duration,
}

impl<T, R> Clone for Groups<T, R> {
    fn clone(&self) -> Self {
        Self { jobs: self.jobs.clone(), wait: self.wait }
    }
}

/// Why an item got no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// It was not taken into a group within the wait.
    TimedOut,
    /// The groups' task is gone, or dropped the item unanswered.
    Closed,
}

/// An item taken into a group, to be answered.
#[derive(Debug)]
pub struct Pending<T, R> {
    pub item: T,
    reply: oneshot::Sender<R>,
}

impl<T, R> Pending<T, R> {
    /// Answers the item's caller (who may be gone) with what `answer`
    /// makes of the item.
    pub fn answer(self, answer: impl FnOnce(T) -> R) {
        drop(self.reply.send(answer(self.item)));
    }
}

#[derive(Debug)]
struct Job<T, R> {
    pending: Pending<T, R>,
    claim: Arc<Claim>,
    /// The caller's span: a group's work is traced under its first caller.
    span: tracing::Span,
}

/// Where an item stands: waiting for a group, taken into one, or given up
/// by its caller.
#[derive(Debug, Default)]
struct Claim(AtomicU8);

const WAITING: u8 = 0;
const TAKEN: u8 = 1;
const ABANDONED: u8 = 2;

impl Claim {
    fn take(&self) -> bool {
        self.0.compare_exchange(WAITING, TAKEN, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    fn abandon(&self) -> bool {
        self.0.compare_exchange(WAITING, ABANDONED, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }
}

/// Abandons its claim when dropped, unless the item was taken already.
struct Abandon(Arc<Claim>);

impl Drop for Abandon {
    fn drop(&mut self) {
        self.0.abandon();
    }
}

impl<T: Send + 'static, R: Send + 'static> Groups<T, R> {
    /// Starts the task: groups of at most `max` items, at most `in_flight`
    /// of them at once, each done by `work`; an item waits at most `wait`
    /// to be taken.
    pub fn start<W, F>(max: usize, in_flight: usize, wait: Duration, work: W) -> Self
    where
        W: Fn(Vec<Pending<T, R>>) -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let (jobs, queue) = mpsc::channel(in_flight * max);
        tokio::spawn(form(queue, max, in_flight, work));
        Self { jobs, wait }
    }

    /// Submits `item` and waits for its answer.
    pub async fn submit(&self, item: T) -> Result<R, Refused> {
        let claim = Arc::new(Claim::default());
        let _gone = Abandon(claim.clone());
        let (reply, answer) = oneshot::channel();
        let job =
            Job { pending: Pending { item, reply }, claim: claim.clone(), span: tracing::Span::current() };
        let deadline = tokio::time::Instant::now() + self.wait;
        match tokio::time::timeout_at(deadline, self.jobs.send(job)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(Refused::Closed),
            Err(_) => return Err(Refused::TimedOut),
        }
        tokio::pin!(answer);
        match tokio::time::timeout_at(deadline, &mut answer).await {
            Ok(answered) => answered.map_err(|_| Refused::Closed),
            Err(_) if claim.abandon() => Err(Refused::TimedOut),
            // Taken just now: it is being done; wait for the answer.
            Err(_) => answer.await.map_err(|_| Refused::Closed),
        }
    }
}

/// Takes what is waiting whenever a slot is free, and starts its group.
async fn form<T, R, W, F>(mut queue: mpsc::Receiver<Job<T, R>>, max: usize, in_flight: usize, work: W)
where
    T: Send + 'static,
    R: Send + 'static,
    W: Fn(Vec<Pending<T, R>>) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(in_flight));
    let mut waiting = Vec::with_capacity(max);
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        if queue.recv_many(&mut waiting, max).await == 0 {
            return;
        }
        let mut span = None;
        let group: Vec<Pending<T, R>> = waiting
            .drain(..)
            .filter(|job| job.claim.take())
            .map(|job| {
                span.get_or_insert(job.span);
                job.pending
            })
            .collect();
        if let Some(span) = span {
            let done = work(group);
            tokio::spawn(
                async move {
                    done.await;
                    drop(slot);
                }
                .instrument(span),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    const WAIT: Duration = Duration::from_millis(100);

    /// The items of each group, in the order the groups started.
    type Seen = Arc<Mutex<Vec<Vec<u32>>>>;

    /// Closed until opened, then open for good.
    #[derive(Clone)]
    struct Gate(Arc<Semaphore>);

    impl Default for Gate {
        fn default() -> Self {
            Self(Arc::new(Semaphore::new(0)))
        }
    }

    impl Gate {
        fn open(&self) {
            self.0.add_permits(Semaphore::MAX_PERMITS / 2);
        }

        async fn pass(&self) {
            drop(self.0.acquire().await);
        }
    }

    /// Groups whose work records each group's items and answers each item
    /// with its double once `gate` is open (or at once, without one),
    /// `delay` after that.
    fn doubling(in_flight: usize, gate: Option<Gate>, delay: Duration) -> (Groups<u32, u32>, Seen) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let groups = Groups::start(4, in_flight, WAIT, move |group: Vec<Pending<u32, u32>>| {
            let (record, gate) = (record.clone(), gate.clone());
            async move {
                record.lock().expect("seen").push(group.iter().map(|p| p.item).collect());
                if let Some(gate) = gate {
                    gate.pass().await;
                }
                tokio::time::sleep(delay).await;
                for pending in group {
                    pending.answer(|item| item * 2);
                }
            }
        });
        (groups, seen)
    }

    /// Groups of one slot, busy with item 1 until the gate opens.
    async fn busy_with_a_first_item()
    -> (Groups<u32, u32>, Seen, Gate, tokio::task::JoinHandle<Result<u32, Refused>>) {
        let gate = Gate::default();
        let (groups, seen) = doubling(1, Some(gate.clone()), Duration::ZERO);
        let first = tokio::spawn({
            let groups = groups.clone();
            async move { groups.submit(1).await }
        });
        tokio::task::yield_now().await;
        (groups, seen, gate, first)
    }

    fn seen_items(seen: &Mutex<Vec<Vec<u32>>>) -> Vec<u32> {
        seen.lock().expect("seen").iter().flatten().copied().collect()
    }

    #[tokio::test(start_paused = true)]
    async fn items_arriving_together_are_one_group_and_each_gets_its_answer() {
        let (groups, seen) = doubling(1, None, Duration::ZERO);
        let answers = futures::future::join_all((1..=6).map(|i| groups.submit(i))).await;
        assert_eq!(answers, (1..=6).map(|i| Ok(i * 2)).collect::<Vec<_>>());
        // At most 4 a group; the rest in the next.
        assert_eq!(*seen.lock().expect("seen"), vec![vec![1, 2, 3, 4], vec![5, 6]]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_item_not_taken_in_time_times_out_and_is_never_done() {
        let (groups, seen, gate, first) = busy_with_a_first_item().await;
        // The only slot is busy with the first item for longer than the wait.
        assert_eq!(groups.submit(2).await, Err(Refused::TimedOut));
        gate.open();
        assert_eq!(first.await.expect("first"), Ok(2));
        // The next group is formed without the given-up item.
        assert_eq!(groups.submit(3).await, Ok(6));
        assert_eq!(seen_items(&seen), vec![1, 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_caller_leaves_its_item_out() {
        let (groups, seen, gate, first) = busy_with_a_first_item().await;
        // A request whose deadline ends it while it waits.
        let dropped = tokio::time::timeout(WAIT / 4, groups.submit(2)).await;
        assert!(dropped.is_err());
        gate.open();
        assert_eq!(first.await.expect("first"), Ok(2));
        assert_eq!(groups.submit(3).await, Ok(6));
        assert_eq!(seen_items(&seen), vec![1, 3]);
    }

    /// The slot frees just before, just as, or just after the waiting
    /// item's wait runs out: whichever wins, an item is done exactly when
    /// its caller is answered with the result.
    #[tokio::test(start_paused = true)]
    async fn taken_or_given_up_never_both() {
        for offset_ms in [-1i64, 0, 1] {
            let busy = WAIT.as_millis() as i64 + offset_ms;
            let (groups, seen) = doubling(1, None, Duration::from_millis(busy as u64));
            let first = tokio::spawn({
                let groups = groups.clone();
                async move { groups.submit(1).await }
            });
            tokio::task::yield_now().await;
            let second = groups.submit(2).await;
            assert_eq!(first.await.expect("first"), Ok(2));
            let done = seen_items(&seen).contains(&2);
            match second {
                Ok(answer) => assert!(done && answer == 4, "offset {offset_ms}: answered without being done"),
                Err(refused) => {
                    assert_eq!(refused, Refused::TimedOut);
                    assert!(!done, "offset {offset_ms}: done although its caller was told it timed out");
                }
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn no_more_groups_at_once_than_slots() {
        let running = Arc::new(Mutex::new((0usize, 0usize)));
        let count = running.clone();
        let groups = Groups::start(1, 2, Duration::from_secs(10), move |group: Vec<Pending<u32, u32>>| {
            let count = count.clone();
            async move {
                {
                    let mut c = count.lock().expect("count");
                    c.0 += 1;
                    c.1 = c.1.max(c.0);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
                count.lock().expect("count").0 -= 1;
                for pending in group {
                    pending.answer(|_| 0);
                }
            }
        });
        let answers = futures::future::join_all((0..8).map(|i| groups.submit(i))).await;
        assert!(answers.iter().all(Result::is_ok));
        assert_eq!(running.lock().expect("count").1, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn queued_items_are_done_after_the_last_handle_goes() {
        let gate = Gate::default();
        let (groups, seen) = doubling(1, Some(gate.clone()), Duration::ZERO);
        let callers: Vec<_> = (1..=5)
            .map(|i| {
                let groups = groups.clone();
                tokio::spawn(async move { groups.submit(i).await })
            })
            .collect();
        tokio::task::yield_now().await;
        drop(groups);
        gate.open();
        for (i, caller) in (1..=5).zip(callers) {
            assert_eq!(caller.await.expect("caller"), Ok(i * 2));
        }
        assert_eq!(seen_items(&seen), vec![1, 2, 3, 4, 5]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_item_its_group_drops_unanswered_is_closed() {
        let groups: Groups<u32, u32> =
            Groups::start(4, 1, WAIT, |group: Vec<Pending<u32, u32>>| async move { drop(group) });
        assert_eq!(groups.submit(1).await, Err(Refused::Closed));
    }
}

//! The checks, in the order they run. Each returns an [`Outcome`] whose
//! failure message says which rule broke and what was seen instead.

use std::collections::BTreeSet;

use super::{CheckResult, Outcome, Store, timed};
use crate::storage::{
    ByteRange, Features, Key, ListOptions, ObjectStore, PartReceipt, PutOptions, StorageError,
};
use crate::transfer;

pub(super) struct Suite<'p> {
    pub store: Store<'p>,
    pub sibling: Store<'p>,
    pub bad_credentials: Option<Store<'p>>,
    pub results: Vec<CheckResult>,
}

/// `Err(message)` fails a check; `?` keeps the checks short.
type Check = Result<(), String>;

fn key(k: &str) -> Key {
    Key::new(k).expect("the suite's own keys are valid")
}

/// Deterministic bytes that differ per object (so a mixed-up object shows).
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

fn unexpected<T: std::fmt::Debug>(what: &str, got: &Result<T, StorageError>) -> String {
    match got {
        Ok(v) => format!("{what}: got success ({v:?})"),
        Err(e) => format!("{what}: got {} ({e})", kind(e)),
    }
}

fn kind(e: &StorageError) -> &'static str {
    match e {
        StorageError::NotFound(_) => "not-found",
        StorageError::AlreadyExists(_) => "already-exists",
        StorageError::PreconditionFailed(_) => "precondition-failed",
        StorageError::Unauthenticated(_) => "unauthenticated",
        StorageError::PermissionDenied(_) => "permission-denied",
        StorageError::Throttled { .. } => "throttled",
        StorageError::Transient(_) => "transient",
        StorageError::InvalidConfig(_) => "invalid-config",
        StorageError::Unsupported(_) => "unsupported",
        StorageError::Other(_) => "other",
        StorageError::PluginFault(_) => "plugin fault",
        StorageError::PluginTimeout(_) => "plugin timeout",
    }
}

fn outcome(result: Check) -> Outcome {
    match result {
        Ok(()) => Outcome::Passed,
        Err(why) => Outcome::Failed(why),
    }
}

const SENTINEL: &str = "sentinel";
const LIST_KEYS: usize = 23;
const CONCURRENT_CREATES: usize = 6;
/// Races per check: one race can happen to serialize on a store that does
/// not enforce create-only; several rarely all do.
const RACE_ROUNDS: usize = 4;
/// Big enough that writing it takes a moment, widening the window a
/// check-then-write store leaves open.
const RACE_OBJECT: usize = 256 << 10;

impl<'p> Suite<'p> {
    pub fn store_features(&self) -> Features {
        self.store.info().features
    }

    async fn record(&mut self, name: &'static str, check: impl AsyncFnOnce(&mut Self) -> Check) {
        let t = std::time::Instant::now();
        let result = check(self).await;
        self.results.push(CheckResult {
            name,
            outcome: outcome(result),
            elapsed: t.elapsed(),
        });
    }

    /// Runs `check` if the plugin claims what it tests (`when`), else
    /// records it as skipped with `why_not`.
    async fn record_if(
        &mut self,
        when: bool,
        why_not: &str,
        name: &'static str,
        check: impl AsyncFnOnce(&mut Self) -> Check,
    ) {
        if when {
            self.record(name, check).await;
        } else {
            self.skip(name, why_not);
        }
    }

    fn skip(&mut self, name: &'static str, why: &str) {
        self.results.push(CheckResult {
            name,
            outcome: Outcome::Skipped(why.to_string()),
            elapsed: Default::default(),
        });
    }

    pub async fn run_all(&mut self) {
        let f = self.store_features();
        let sentinel = pattern(1000, 99);
        let r = timed(
            "isolation: a sentinel in a sibling prefix is stored",
            async || {
                outcome(
                    self.sibling
                        .put(&key(SENTINEL), &sentinel, &PutOptions::overwrite())
                        .await
                        .map(|_| ())
                        .map_err(|e| format!("put {SENTINEL}: {e}")),
                )
            },
        )
        .await;
        self.results.push(r);

        self.record("limits: consistent", async |s| s.limits())
            .await;
        self.record("put/get: empty object", async |s| {
            s.round_trip("empty", 0).await
        })
        .await;
        self.record("put/get: 1 byte", async |s| {
            s.round_trip("one-byte", 1).await
        })
        .await;
        self.record("put/get: 16 MiB", async |s| {
            s.round_trip("sixteen-mib", 16 << 20).await
        })
        .await;
        self.record("put/get: keys with spaces and UTF-8", async |s| {
            s.round_trip("dir with space/ünïcødé ключ", 10).await
        })
        .await;
        self.record(
            "errors: a missing key is not-found (head, get)",
            async |s| s.missing_is_not_found().await,
        )
        .await;
        self.record("put: overwrite replaces the object", async |s| {
            s.overwrite().await
        })
        .await;
        self.record("read-after-write and list-after-write", async |s| {
            s.read_and_list_after_write().await
        })
        .await;

        self.record_if(
            f.create_only,
            "not claimed (create-only)",
            "create-only: a second create is already-exists, the first object kept",
            async |s| s.create_only().await,
        )
        .await;
        self.record_if(
            f.atomic_create_only,
            "not claimed (atomic-create-only)",
            "create-only: of concurrent creates of one key exactly one wins",
            async |s| s.concurrent_creates().await,
        )
        .await;
        self.record_if(
            f.ranged_get,
            "not claimed (ranged-get)",
            "ranged get: middle, to the end, past the end",
            async |s| s.ranged_get().await,
        )
        .await;

        self.record(
            "list: pages hold every key once, in byte order, none skipped",
            async |s| s.list_pagination().await,
        )
        .await;
        self.record_if(
            f.list_delimiter,
            "not claimed (list-delimiter)",
            "list: a delimiter groups keys into common prefixes",
            async |s| s.list_delimiter().await,
        )
        .await;
        self.record_if(
            f.list_start_after,
            "not claimed (list-start-after)",
            "list: start-after skips up to and including the key",
            async |s| s.list_start_after().await,
        )
        .await;
        self.record(
            "delete: many keys at once; missing keys are no failure",
            async |s| s.delete_many().await,
        )
        .await;

        if f.multipart {
            self.record("multipart: parts assemble in order", async |s| {
                s.multipart_assembles().await
            })
            .await;
            self.record(
                "multipart: an aborted upload leaves nothing visible",
                async |s| s.multipart_abort().await,
            )
            .await;
            if f.create_only {
                self.record(
                    "multipart: a create-only complete refuses a taken key",
                    async |s| s.multipart_create_only().await,
                )
                .await;
            }
        } else {
            self.skip(
                "multipart: parts assemble in order",
                "not claimed (multipart)",
            );
        }

        let has_secrets = self.bad_credentials.is_some();
        self.record_if(
            has_secrets,
            "the configuration has no secrets",
            "errors: wrong credentials are unauthenticated",
            async |s| s.bad_credentials().await,
        )
        .await;
        let grants = self.store.grants();
        let granted = !(grants.endpoints.is_empty() && grants.directories.is_empty());
        self.record_if(
            granted,
            "the plugin asks for no grants",
            "sandbox: without its grants the plugin reaches nothing",
            async |s| s.no_grants_no_access().await,
        )
        .await;

        let r = timed(
            "isolation: objects of other prefixes are untouched",
            async || {
                outcome(match self.sibling.get(&key(SENTINEL), None).await {
                    Ok((_, data)) if data == sentinel => Ok(()),
                    Ok(_) => Err("the sentinel's bytes changed".into()),
                    Err(e) => Err(format!("the sentinel is gone: {e}")),
                })
            },
        )
        .await;
        self.results.push(r);
    }

    /// Deletes everything the suite wrote (its area and the sentinel).
    pub async fn clean_up(&mut self) {
        let r = timed("clean-up: the test area is deleted", async || {
            let mut result = Ok(());
            for store in [&mut self.store, &mut self.sibling] {
                if let Err(e) = delete_all(store).await {
                    result = Err(e);
                }
            }
            outcome(result)
        })
        .await;
        self.results.push(r);
    }

    fn limits(&self) -> Check {
        let l = self.store.info().limits;
        let f = self.store.info().features;
        if l.max_single_put == 0 {
            return Err("max-single-put is 0".into());
        }
        if l.max_delete_batch == 0 {
            return Err("max-delete-batch is 0".into());
        }
        if f.multipart && (l.min_part_size > l.max_part_size || l.max_parts < 2) {
            return Err(format!(
                "multipart limits cannot work: parts {}..{} bytes, at most {} parts",
                l.min_part_size, l.max_part_size, l.max_parts
            ));
        }
        if f.atomic_create_only && !f.create_only {
            return Err("atomic-create-only claimed without create-only".into());
        }
        Ok(())
    }

    async fn round_trip(&mut self, name: &str, len: usize) -> Check {
        let k = key(&format!("objects/{name}"));
        let data = pattern(len, 1);
        transfer::upload(&mut self.store, &k, &data, &PutOptions::overwrite())
            .await
            .map_err(|e| format!("put {k}: {e}"))?;
        let got = transfer::download(&mut self.store, &k)
            .await
            .map_err(|e| format!("get {k}: {e}"))?;
        if got != data {
            return Err(format!(
                "get {k} returned {} bytes that differ from the {len} stored",
                got.len()
            ));
        }
        let meta = self
            .store
            .head(&k)
            .await
            .map_err(|e| format!("head {k}: {e}"))?;
        if meta.size != len as u64 {
            return Err(format!("head {k} says {} bytes, not {len}", meta.size));
        }
        Ok(())
    }

    async fn missing_is_not_found(&mut self) -> Check {
        let k = key("objects/never-written");
        let head = self.store.head(&k).await;
        if !matches!(head, Err(StorageError::NotFound(_))) {
            return Err(unexpected(
                "head of a missing key should be not-found",
                &head,
            ));
        }
        let get = self.store.get(&k, None).await.map(|(m, _)| m);
        if !matches!(get, Err(StorageError::NotFound(_))) {
            return Err(unexpected("get of a missing key should be not-found", &get));
        }
        Ok(())
    }

    async fn overwrite(&mut self) -> Check {
        let k = key("objects/overwritten");
        for (seed, len) in [(1, 300), (2, 200)] {
            self.store
                .put(&k, &pattern(len, seed), &PutOptions::overwrite())
                .await
                .map_err(|e| format!("put {k}: {e}"))?;
        }
        let (_, got) = self
            .store
            .get(&k, None)
            .await
            .map_err(|e| format!("get {k}: {e}"))?;
        if got != pattern(200, 2) {
            return Err("after two overwrites, get did not return the second object".into());
        }
        Ok(())
    }

    async fn read_and_list_after_write(&mut self) -> Check {
        let k = key("fresh/just-written");
        self.store
            .put(&k, b"now", &PutOptions::overwrite())
            .await
            .map_err(|e| format!("put {k}: {e}"))?;
        let (_, got) = self
            .store
            .get(&k, None)
            .await
            .map_err(|e| format!("get right after put: {e}"))?;
        if got != b"now" {
            return Err("get right after put returned other bytes".into());
        }
        let (listed, _) = transfer::list_all(&mut self.store, "fresh/", None)
            .await
            .map_err(|e| format!("list right after put: {e}"))?;
        if !listed.iter().any(|o| o.key == k.as_str()) {
            return Err(format!(
                "list right after put does not show {k} (saw {:?})",
                listed.iter().map(|o| &o.key).collect::<Vec<_>>()
            ));
        }
        Ok(())
    }

    async fn create_only(&mut self) -> Check {
        let k = key("create/once");
        self.store
            .put(&k, &pattern(100, 1), &PutOptions::create_only())
            .await
            .map_err(|e| format!("first create of {k}: {e}"))?;
        let second = self
            .store
            .put(&k, &pattern(100, 2), &PutOptions::create_only())
            .await;
        if !matches!(second, Err(StorageError::AlreadyExists(_))) {
            return Err(unexpected(
                "a second create should be already-exists",
                &second,
            ));
        }
        let (_, got) = self
            .store
            .get(&k, None)
            .await
            .map_err(|e| format!("get {k}: {e}"))?;
        if got != pattern(100, 1) {
            return Err("the second create replaced the first object".into());
        }
        Ok(())
    }

    async fn concurrent_creates(&mut self) -> Check {
        let mut racers: Vec<Store<'p>> = (0..CONCURRENT_CREATES)
            .map_while(|_| self.store.worker())
            .collect();
        if racers.len() < 2 {
            return Err("the store offers no second instance to race with".into());
        }
        // Each racer's first call starts its plugin instance; do that first,
        // so the creates below really leave together.
        for racer in &mut racers {
            let _ = racer.head(&key("create/warm-up")).await;
        }
        for round in 0..RACE_ROUNDS {
            self.race(&mut racers, &key(&format!("create/raced-{round}")), round)
                .await?;
        }
        Ok(())
    }

    /// Every racer creates `k` at once, each with its own bytes: exactly one
    /// may win, the others must be told already-exists, and the stored bytes
    /// must be the winner's.
    async fn race(&mut self, racers: &mut [Store<'p>], k: &Key, round: usize) -> Check {
        let body = |i: usize| pattern(RACE_OBJECT, (10 * round + i) as u8);
        let attempts = racers.iter_mut().enumerate().map(|(i, s)| {
            let data = body(i);
            async move { (i, s.put(k, &data, &PutOptions::create_only()).await) }
        });
        let results = futures::future::join_all(attempts).await;
        if let Some((_, r)) = results
            .iter()
            .find(|(_, r)| !matches!(r, Ok(_) | Err(StorageError::AlreadyExists(_))))
        {
            return Err(unexpected("a losing create should be already-exists", r));
        }
        let winners: Vec<usize> = results
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(i, _)| *i)
            .collect();
        let [winner] = winners[..] else {
            return Err(format!(
                "{} of {} concurrent creates succeeded (round {})",
                winners.len(),
                results.len(),
                round + 1
            ));
        };
        let (_, got) = self
            .store
            .get(k, None)
            .await
            .map_err(|e| format!("get {k}: {e}"))?;
        if got != body(winner) {
            return Err("the stored object is not the winner's".into());
        }
        Ok(())
    }

    async fn ranged_get(&mut self) -> Check {
        let k = key("objects/ranged");
        let data = pattern(10_000, 5);
        self.store
            .put(&k, &data, &PutOptions::overwrite())
            .await
            .map_err(|e| format!("put {k}: {e}"))?;
        let cases: [(u64, Option<u64>, &[u8]); 4] = [
            (1000, Some(500), &data[1000..1500]),
            (9000, None, &data[9000..]),
            (9990, Some(100), &data[9990..]),
            (0, Some(1), &data[..1]),
        ];
        for (offset, length, want) in cases {
            let range = ByteRange { offset, length };
            let (meta, got) = self
                .store
                .get(&k, Some(range))
                .await
                .map_err(|e| format!("get {k} {range:?}: {e}"))?;
            if got != want {
                return Err(format!(
                    "get {range:?} returned {} bytes, want {} (bytes {}..)",
                    got.len(),
                    want.len(),
                    offset
                ));
            }
            if meta.size != data.len() as u64 {
                return Err(format!(
                    "a ranged get reported size {} instead of the whole object's {}",
                    meta.size,
                    data.len()
                ));
            }
        }
        Ok(())
    }

    /// The keys the listing checks use: several "directories", a space and
    /// UTF-8, so byte order and escaping both matter.
    fn list_keys() -> Vec<String> {
        let mut keys: Vec<String> = (0..LIST_KEYS)
            .map(|i| match i % 4 {
                0 => format!("list/a/{i:03}"),
                1 => format!("list/b/{i:03} with space"),
                2 => format!("list/c/{i:03}-ü"),
                _ => format!("list/{i:03}"),
            })
            .collect();
        keys.sort();
        keys
    }

    async fn list_pagination(&mut self) -> Check {
        let keys = Self::list_keys();
        for k in &keys {
            self.store
                .put(&key(k), k.as_bytes(), &PutOptions::overwrite())
                .await
                .map_err(|e| format!("put {k}: {e}"))?;
        }
        let mut seen = Vec::new();
        let mut token = None;
        let mut pages = 0;
        loop {
            let page = self
                .store
                .list_page(&ListOptions {
                    prefix: "list/".into(),
                    page_token: token.take(),
                    max_keys: 5,
                    ..Default::default()
                })
                .await
                .map_err(|e| format!("list page {}: {e}", pages + 1))?;
            pages += 1;
            if page.objects.len() > 5 {
                return Err(format!(
                    "a page asked for at most 5 keys held {}",
                    page.objects.len()
                ));
            }
            seen.extend(page.objects.into_iter().map(|o| o.key));
            match page.next_page_token {
                Some(t) if pages < 100 => token = Some(t),
                Some(_) => return Err("more than 100 pages for 23 keys".into()),
                None => break,
            }
        }
        if seen != keys {
            let want: BTreeSet<_> = keys.iter().collect();
            let got: BTreeSet<_> = seen.iter().collect();
            let missing: Vec<_> = want.difference(&got).collect();
            let extra: Vec<_> = got.difference(&want).collect();
            let repeated = seen.len() - got.len();
            return Err(format!(
                "listing in pages of 5 differs: missing {missing:?}, unexpected {extra:?}, {repeated} repeated, {}",
                if seen.windows(2).all(|w| w[0] < w[1]) {
                    "in order"
                } else {
                    "out of byte order"
                }
            ));
        }
        if pages < 3 {
            return Err(format!(
                "{} keys came in {pages} page(s) although at most 5 were asked per page",
                seen.len()
            ));
        }
        Ok(())
    }

    async fn list_delimiter(&mut self) -> Check {
        let page = self
            .store
            .list_page(&ListOptions {
                prefix: "list/".into(),
                delimiter: Some("/".into()),
                max_keys: 1000,
                ..Default::default()
            })
            .await
            .map_err(|e| format!("list with delimiter: {e}"))?;
        let want_prefixes = ["list/a/", "list/b/", "list/c/"];
        let top: Vec<String> = Self::list_keys()
            .into_iter()
            .filter(|k| k.matches('/').count() == 1)
            .collect();
        let objects: Vec<_> = page.objects.iter().map(|o| o.key.clone()).collect();
        if page.common_prefixes != want_prefixes || objects != top {
            return Err(format!(
                "delimiter '/' under list/: common prefixes {:?} (want {want_prefixes:?}), objects {objects:?} (want {top:?})",
                page.common_prefixes
            ));
        }
        Ok(())
    }

    async fn list_start_after(&mut self) -> Check {
        let keys = Self::list_keys();
        let after = keys[10].clone();
        let (listed, _) = {
            let mut out = Vec::new();
            let mut token = None;
            loop {
                let page = self
                    .store
                    .list_page(&ListOptions {
                        prefix: "list/".into(),
                        start_after: Some(after.clone()),
                        page_token: token.take(),
                        max_keys: 1000,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| format!("list after {after}: {e}"))?;
                out.extend(page.objects.into_iter().map(|o| o.key));
                match page.next_page_token {
                    Some(t) => token = Some(t),
                    None => break (out, ()),
                }
            }
        };
        if listed != keys[11..] {
            return Err(format!(
                "start-after {after:?} listed {} keys, want {}",
                listed.len(),
                keys.len() - 11
            ));
        }
        Ok(())
    }

    async fn delete_many(&mut self) -> Check {
        let keys: Vec<Key> = (0..12).map(|i| key(&format!("doomed/{i:02}"))).collect();
        for k in &keys[..8] {
            self.store
                .put(k, b"x", &PutOptions::overwrite())
                .await
                .map_err(|e| format!("put {k}: {e}"))?;
        }
        // Four of the twelve were never written.
        let failures = self
            .store
            .delete(&keys)
            .await
            .map_err(|e| format!("delete of 12 keys: {e}"))?;
        if let Some((k, e)) = failures.first() {
            return Err(format!(
                "delete reported {} failures, first {k}: {e}",
                failures.len()
            ));
        }
        for k in &keys {
            let head = self.store.head(k).await;
            if !matches!(head, Err(StorageError::NotFound(_))) {
                return Err(unexpected(&format!("{k} after delete"), &head));
            }
        }
        let (left, _) = transfer::list_all(&mut self.store, "doomed/", None)
            .await
            .map_err(|e| format!("list after delete: {e}"))?;
        if !left.is_empty() {
            return Err(format!("{} deleted keys are still listed", left.len()));
        }
        Ok(())
    }

    /// Two parts of the smallest size the plugin allows (so a real service's
    /// minimum is met), then a short last part.
    fn multipart_parts(&self) -> Vec<Vec<u8>> {
        let min = (self.store.info().limits.min_part_size as usize)
            .clamp(1, transfer::MAX_CHUNK as usize);
        vec![pattern(min, 21), pattern(min, 22), pattern(1234, 23)]
    }

    async fn send_parts(
        &mut self,
        k: &Key,
        options: &PutOptions,
    ) -> Result<(String, Vec<PartReceipt>), String> {
        let id = self
            .store
            .start_multipart(k, options)
            .await
            .map_err(|e| format!("start-multipart {k}: {e}"))?;
        let mut receipts = Vec::new();
        for (i, part) in self.multipart_parts().iter().enumerate() {
            receipts.push(
                self.store
                    .put_part(k, &id, i as u32 + 1, part)
                    .await
                    .map_err(|e| format!("put-part {} of {k}: {e}", i + 1))?,
            );
        }
        Ok((id, receipts))
    }

    async fn multipart_assembles(&mut self) -> Check {
        let k = key("multipart/assembled");
        let (id, receipts) = self.send_parts(&k, &PutOptions::overwrite()).await?;
        let head = self.store.head(&k).await;
        if !matches!(head, Err(StorageError::NotFound(_))) {
            return Err(unexpected(
                "before complete, the object must not be visible",
                &head,
            ));
        }
        self.store
            .complete_multipart(&k, &id, &receipts, &PutOptions::overwrite())
            .await
            .map_err(|e| format!("complete-multipart {k}: {e}"))?;
        let want: Vec<u8> = self.multipart_parts().concat();
        let got = transfer::download(&mut self.store, &k)
            .await
            .map_err(|e| format!("get {k}: {e}"))?;
        if got != want {
            return Err(format!(
                "the completed object ({} bytes) is not the parts in order ({} bytes)",
                got.len(),
                want.len()
            ));
        }
        Ok(())
    }

    async fn multipart_abort(&mut self) -> Check {
        let k = key("multipart/aborted");
        let (id, _) = self.send_parts(&k, &PutOptions::overwrite()).await?;
        self.store
            .abort_multipart(&k, &id)
            .await
            .map_err(|e| format!("abort-multipart {k}: {e}"))?;
        let head = self.store.head(&k).await;
        if !matches!(head, Err(StorageError::NotFound(_))) {
            return Err(unexpected("after abort, the object must not exist", &head));
        }
        let (listed, _) = transfer::list_all(&mut self.store, "multipart/aborted", None)
            .await
            .map_err(|e| format!("list after abort: {e}"))?;
        if !listed.is_empty() {
            return Err(format!("after abort, list shows {:?}", listed[0].key));
        }
        Ok(())
    }

    async fn multipart_create_only(&mut self) -> Check {
        let k = key("multipart/taken");
        self.store
            .put(&k, b"first", &PutOptions::create_only())
            .await
            .map_err(|e| format!("put {k}: {e}"))?;
        let (id, receipts) = self.send_parts(&k, &PutOptions::create_only()).await?;
        let complete = self
            .store
            .complete_multipart(&k, &id, &receipts, &PutOptions::create_only())
            .await;
        let _ = self.store.abort_multipart(&k, &id).await;
        let refused = matches!(complete, Err(StorageError::AlreadyExists(_)));
        let (_, got) = self
            .store
            .get(&k, None)
            .await
            .map_err(|e| format!("get {k}: {e}"))?;
        match (refused, got == b"first") {
            (true, true) => Ok(()),
            (_, false) => Err("a create-only complete replaced an existing object".into()),
            (false, true) if !self.store.info().features.atomic_create_only => Ok(()),
            (false, true) => Err(unexpected(
                "a create-only complete over a taken key should be already-exists",
                &complete,
            )),
        }
    }

    async fn bad_credentials(&mut self) -> Check {
        let bad = self
            .bad_credentials
            .as_mut()
            .expect("checked by the caller");
        let head = bad.head(&key("objects/one-byte")).await;
        if !matches!(head, Err(StorageError::Unauthenticated(_))) {
            return Err(unexpected(
                "head with every secret spoiled should be unauthenticated",
                &head,
            ));
        }
        Ok(())
    }

    async fn no_grants_no_access(&mut self) -> Check {
        let k = key("objects/one-byte");
        let mut ungranted = self.store.without_grants();
        match ungranted.get(&k, None).await {
            Ok((_, data)) if data == pattern(1, 1) => {
                Err("with no grants the plugin still read a stored object".into())
            }
            _ => Ok(()),
        }
    }
}

async fn delete_all(store: &mut Store<'_>) -> Result<(), String> {
    let (objects, _) = transfer::list_all(store, "", None)
        .await
        .map_err(|e| format!("list for clean-up: {e}"))?;
    let batch = store.info().limits.max_delete_batch.max(1) as usize;
    let keys: Vec<Key> = objects
        .iter()
        .filter_map(|o| Key::new(o.key.clone()).ok())
        .collect();
    for chunk in keys.chunks(batch) {
        let failures = store
            .delete(chunk)
            .await
            .map_err(|e| format!("delete for clean-up: {e}"))?;
        if let Some((k, e)) = failures.first() {
            return Err(format!("clean-up could not delete {k}: {e}"));
        }
    }
    Ok(())
}

//! Generation jobs: stored, claimed under a lease, run page by page. A page's drafts and the job's
//! progress commit together; a runner renews its lease after every page, and a job whose lease ran
//! out (its backend died) is taken over by whichever backend's sweeper sees it first. A page the
//! LLM service could not be reached for (its pod restarting, say) is asked again, backing off, for
//! up to [`LLM_RETRY`] before the job stops as retryable.

use std::time::{Duration, Instant};

use flashcards_bootstrap::ApiError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use flashcards_bootstrap::http_client::ServiceError;
use flashcards_contracts::llm::{self, Card as GeneratedCard};

use super::llm_client::LlmClient;
use crate::{
    AppState,
    cards::model::{CardContent, CardKind, SourceRef},
    db::{QueryResultExt, fetch_json_rows},
    timestamp::rfc3339,
};

/// Jobs queued, or left behind by a runner that died (`$1`: now).
pub const PENDING: &str = "SELECT id FROM generation_jobs WHERE status IN ('queued', 'running') \
     AND lease_until <= $1";

/// How long a claim on a job lasts without renewal.
pub const LEASE_MS: i64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Done,
    /// The LLM service was unreachable or busy; `POST /api/jobs/{id}/retry` continues where it
    /// stopped.
    FailedRetryable,
    Failed,
}

impl JobStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::FailedRetryable => "failed_retryable",
            Self::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Job {
    pub id: String,
    pub document_id: String,
    pub deck_id: String,
    pub status: JobStatus,
    pub max_cards: i64,
    pub kinds: String,
    pub pages_total: i64,
    /// Pages sent to the LLM service and stored.
    pub pages_done: i64,
    pub drafts_created: i64,
    pub error: Option<String>,
    #[serde(skip_deserializing)]
    pub created_at: String,
    #[serde(skip_deserializing)]
    pub updated_at: String,
}

const JOB_COLUMNS: [&str; 12] = [
    "id",
    "document_id",
    "deck_id",
    "status",
    "max_cards",
    "kinds",
    "pages_total",
    "pages_done",
    "drafts_created",
    "error",
    "created_at",
    "updated_at",
];

#[derive(Deserialize)]
struct JobRow {
    #[serde(flatten)]
    job: Job,
    created_at: i64,
    updated_at: i64,
}

impl From<JobRow> for Job {
    fn from(row: JobRow) -> Self {
        Self {
            created_at: rfc3339(row.created_at),
            updated_at: rfc3339(row.updated_at),
            ..row.job
        }
    }
}

/// The LLM service jobs send pages to.
#[derive(Clone)]
pub struct Generation {
    pub llm: LlmClient,
    /// How long a page is asked again while the LLM service is unreachable.
    pub retry_for: Duration,
}

impl Generation {
    pub fn new(llm: LlmClient, retry_for: Duration) -> Self {
        Self { llm, retry_for }
    }
}

/// How long a page is asked again while the LLM service is unreachable: long enough for a killed
/// pod to be replaced, and inside the runner's [`LEASE_MS`] (renewed as the page started) while
/// the failing calls are quick (refused connections). A call that hangs until its timeout can
/// outlast the lease; another backend may then take the job over, and `store_page`'s progress
/// check still stores each page once.
pub const LLM_RETRY: Duration = Duration::from_secs(40);

/// The wait before asking again after `attempt` failed tries (0 for the first), `waited` into a
/// `budget`: doubling from one second up to eight; `None` once the budget would be overrun.
fn next_retry(attempt: u32, waited: Duration, budget: Duration) -> Option<Duration> {
    let delay = Duration::from_secs(1 << attempt.min(3));
    (waited + delay <= budget).then_some(delay)
}

impl JobStatus {
    /// Whether the job will not move again by itself.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Queued | Self::Running)
    }
}

pub fn job_not_found() -> ApiError {
    ApiError::NotFound("no such job".to_owned())
}

pub async fn create(
    state: &AppState,
    user_id: &str,
    document_id: &str,
    deck_id: &str,
    max_cards: i64,
    kinds: &str,
    pages_total: i64,
) -> Result<Job, ApiError> {
    let id = uuid::Uuid::now_v7().to_string();
    let now = state.clock.now_ms();
    sqlx::query(
        "INSERT INTO generation_jobs (id, user_id, document_id, deck_id, max_cards, kinds, status, \
         pages_total, pages_done, drafts_created, lease_until, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, 0, 0, $9, $9)",
    )
    .bind(&id)
    .bind(user_id)
    .bind(document_id)
    .bind(deck_id)
    .bind(max_cards)
    .bind(kinds)
    .bind(JobStatus::Queued.as_str())
    .bind(pages_total)
    .bind(now)
    .execute(&state.db.write)
    .await
    .db("creating the job")?;
    load(state, user_id, &id).await
}

pub async fn load(state: &AppState, user_id: &str, id: &str) -> Result<Job, ApiError> {
    let sql = state.db.engine.select_json(
        "generation_jobs",
        &JOB_COLUMNS,
        "WHERE id = $1 AND user_id = $2",
    );
    let query = sqlx::query_scalar(&sql).bind(id).bind(user_id);
    fetch_json_rows::<_, JobRow>(query, &state.db.read, "loading the job")
        .await?
        .into_iter()
        .next()
        .map(Job::from)
        .ok_or_else(job_not_found)
}

/// Puts a failed job back in the queue, keeping its progress.
pub async fn requeue(state: &AppState, user_id: &str, id: &str) -> Result<(), ApiError> {
    let job = load(state, user_id, id).await?;
    if !matches!(job.status, JobStatus::FailedRetryable | JobStatus::Failed) {
        return Err(ApiError::Conflict(format!(
            "the job is {:?}, not failed",
            job.status
        )));
    }
    sqlx::query(
        "UPDATE generation_jobs SET status = $1, error = NULL, lease_until = 0, updated_at = $2 \
         WHERE id = $3 AND user_id = $4",
    )
    .bind(JobStatus::Queued.as_str())
    .bind(state.clock.now_ms())
    .bind(id)
    .bind(user_id)
    .execute(&state.db.write)
    .await
    .db("requeueing the job")?;
    state.changes.notify(id);
    Ok(())
}

/// Takes the job if it is queued or its runner's lease ran out, and runs it in the background.
/// Returns whether this process took it.
pub async fn claim_and_run(state: &AppState, id: &str) -> Result<bool, ApiError> {
    let now = state.clock.now_ms();
    let claimed = sqlx::query(
        "UPDATE generation_jobs SET status = $1, lease_until = $2, updated_at = $3 \
         WHERE id = $4 AND status IN ('queued', 'running') AND lease_until <= $3",
    )
    .bind(JobStatus::Running.as_str())
    .bind(now + LEASE_MS)
    .bind(now)
    .bind(id)
    .execute(&state.db.write)
    .await
    .db("claiming the job")?;
    if claimed.rows_affected() == 0 {
        return Ok(false);
    }
    state.changes.notify(id);
    let runner_state = state.clone();
    let job_id = id.to_owned();
    state.runners.spawn(async move {
        if let Err(err) = run(&runner_state, &job_id).await {
            tracing::warn!(job = %job_id, %err, "generation job stopped");
        }
    });
    Ok(true)
}

/// What a runner needs of its job.
#[derive(Deserialize)]
struct Progress {
    user_id: String,
    document_id: String,
    deck_id: String,
    max_cards: i64,
    kinds: String,
    pages_total: i64,
    pages_done: i64,
    drafts_created: i64,
}

/// How many cards to ask for on the next page: what is left of the budget, spread over the pages
/// left.
pub fn page_quota(max_cards: i64, drafts_created: i64, pages_total: i64, pages_done: i64) -> i64 {
    let left = (max_cards - drafts_created).max(0);
    let pages_left = (pages_total - pages_done).max(1);
    if left == 0 {
        0
    } else {
        (left + pages_left - 1) / pages_left
    }
}

/// A card from the LLM service that can become a draft.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDraft {
    pub kind: CardKind,
    pub front: String,
    pub back: String,
    pub start: i64,
    pub end: i64,
}

/// The kinds a job stored as `basic,cloze` asks the LLM service for.
pub fn kinds_of(stored: &str) -> Vec<llm::CardKind> {
    [llm::CardKind::Basic, llm::CardKind::Cloze]
        .into_iter()
        .filter(|kind| stored.split(',').any(|name| name == kind.as_str()))
        .collect()
}

/// The LLM service's cards that become drafts: of a kind the job asked for, with content a card may
/// have and a span inside the page (the checks accepting a draft makes), the first `quota` of them.
/// The rest is dropped rather than stored: a draft that could never be accepted would only stand
/// in the learner's way.
pub fn usable_drafts(
    cards: &[GeneratedCard],
    quota: usize,
    kinds: &[llm::CardKind],
    document_id: &str,
    page: i64,
    page_chars: usize,
) -> Vec<NewDraft> {
    cards
        .iter()
        .filter(|card| kinds.contains(&card.kind))
        .filter_map(|card| {
            let (kind, front, back) = match card.kind {
                llm::CardKind::Cloze => (CardKind::Cloze, card.text.clone()?, String::new()),
                llm::CardKind::Basic => (CardKind::Basic, card.front.clone()?, card.back.clone()?),
            };
            if card.source.end > page_chars {
                return None;
            }
            let start = i64::try_from(card.source.start).ok()?;
            let end = i64::try_from(card.source.end).ok()?;
            let content = CardContent {
                kind,
                front,
                back,
                tags: Vec::new(),
                source: Some(SourceRef {
                    document_id: document_id.to_owned(),
                    page: Some(page),
                    start: Some(start),
                    end: Some(end),
                    bbox: None,
                }),
            };
            let (content, _) = content.validate().ok()?;
            Some(NewDraft {
                kind,
                front: content.front,
                back: content.back,
                start,
                end,
            })
        })
        .take(quota)
        .collect()
}

async fn run(state: &AppState, id: &str) -> Result<(), ApiError> {
    loop {
        let sql = state.db.engine.select_json(
            "generation_jobs",
            &[
                "id",
                "user_id",
                "document_id",
                "deck_id",
                "max_cards",
                "kinds",
                "pages_total",
                "pages_done",
                "drafts_created",
            ],
            "WHERE id = $1",
        );
        let query = sqlx::query_scalar(&sql).bind(id);
        let Some(progress) =
            fetch_json_rows::<_, Progress>(query, &state.db.read, "loading the job")
                .await?
                .into_iter()
                .next()
        else {
            return Ok(());
        };
        let quota = page_quota(
            progress.max_cards,
            progress.drafts_created,
            progress.pages_total,
            progress.pages_done,
        );
        if progress.pages_done >= progress.pages_total || quota == 0 {
            return finish(state, id, JobStatus::Done, None).await;
        }
        let page = progress.pages_done + 1;
        let text: Option<(String,)> =
            sqlx::query_as("SELECT text FROM document_pages WHERE document_id = $1 AND page = $2")
                .bind(&progress.document_id)
                .bind(page)
                .fetch_optional(&state.db.read)
                .await
                .db("loading the page")?;
        let text = text.map(|(text,)| text).unwrap_or_default();
        let drafts = if text.trim().is_empty() {
            Vec::new()
        } else {
            let kinds = kinds_of(&progress.kinds);
            let quota = usize::try_from(quota).unwrap_or(1);
            match generate_retrying(state, id, page, &text, quota, &kinds).await {
                Ok(cards) => {
                    let drafts = usable_drafts(
                        &cards,
                        quota,
                        &kinds,
                        &progress.document_id,
                        page,
                        text.chars().count(),
                    );
                    if drafts.len() < cards.len() {
                        tracing::warn!(
                            job = id,
                            page,
                            received = cards.len(),
                            kept = drafts.len(),
                            "dropped cards from the LLM service that were not asked for or could not be accepted"
                        );
                    }
                    drafts
                }
                Err(err @ ServiceError::Unavailable { .. }) => {
                    let message = format!(
                        "{err}; stopped before page {page}: retry with POST /api/jobs/{id}/retry"
                    );
                    return finish(state, id, JobStatus::FailedRetryable, Some(&message)).await;
                }
                Err(err @ ServiceError::Rejected { .. }) => {
                    return finish(state, id, JobStatus::Failed, Some(&err.to_string())).await;
                }
            }
        };
        if !store_page(state, id, &progress, page, &drafts).await? {
            // Another runner moved the job on: it is theirs now.
            return Ok(());
        }
    }
}

/// One page's cards from the LLM service, asked again while it is unreachable, within the
/// budget [`next_retry`] allows.
async fn generate_retrying(
    state: &AppState,
    id: &str,
    page: i64,
    text: &str,
    quota: usize,
    kinds: &[llm::CardKind],
) -> Result<Vec<GeneratedCard>, ServiceError> {
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        match state.generation.llm.generate(text, quota, kinds).await {
            Err(err @ ServiceError::Unavailable { .. }) => {
                let Some(delay) =
                    next_retry(attempt, started.elapsed(), state.generation.retry_for)
                else {
                    return Err(err);
                };
                tracing::warn!(job = id, page, %err, ?delay, "the LLM service is unreachable; asking again");
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            answered => return answered,
        }
    }
}

/// Stores one page's drafts and advances the job in one transaction. `false` when the job's
/// progress is no longer what this runner read.
async fn store_page(
    state: &AppState,
    id: &str,
    progress: &Progress,
    page: i64,
    drafts: &[NewDraft],
) -> Result<bool, ApiError> {
    let now = state.clock.now_ms();
    let mut tx = state.db.begin_write().await.db("storing drafts")?;
    let advanced = sqlx::query(
        "UPDATE generation_jobs SET pages_done = $1, drafts_created = drafts_created + $2, \
         lease_until = $3, updated_at = $4 WHERE id = $5 AND pages_done = $6 AND status = 'running'",
    )
    .bind(page)
    .bind(i64::try_from(drafts.len()).unwrap_or(i64::MAX))
    .bind(now + LEASE_MS)
    .bind(now)
    .bind(id)
    .bind(page - 1)
    .execute(&mut *tx)
    .await
    .db("advancing the job")?;
    if advanced.rows_affected() == 0 {
        return Ok(false);
    }
    for draft in drafts {
        sqlx::query(
            "INSERT INTO drafts (id, user_id, job_id, document_id, deck_id, kind, front, back, \
             page, span_start, span_end, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(&progress.user_id)
        .bind(id)
        .bind(&progress.document_id)
        .bind(&progress.deck_id)
        .bind(draft.kind.as_str())
        .bind(&draft.front)
        .bind(&draft.back)
        .bind(page)
        .bind(draft.start)
        .bind(draft.end)
        .bind(now)
        .execute(&mut *tx)
        .await
        .db("storing a draft")?;
    }
    tx.commit().await.db("storing drafts")?;
    state.changes.notify(id);
    Ok(true)
}

async fn finish(
    state: &AppState,
    id: &str,
    status: JobStatus,
    error: Option<&str>,
) -> Result<(), ApiError> {
    sqlx::query(
        "UPDATE generation_jobs SET status = $1, error = $2, lease_until = 0, updated_at = $3 \
         WHERE id = $4",
    )
    .bind(status.as_str())
    .bind(error)
    .bind(state.clock.now_ms())
    .bind(id)
    .execute(&state.db.write)
    .await
    .db("finishing the job")?;
    state.changes.notify(id);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flashcards_contracts::llm::Span;

    fn card(kind: &str, front: &str, back: &str, span: (usize, usize)) -> GeneratedCard {
        let cloze = kind == "cloze";
        GeneratedCard {
            kind: if cloze {
                llm::CardKind::Cloze
            } else {
                llm::CardKind::Basic
            },
            front: (!cloze).then(|| front.to_owned()),
            back: (!cloze).then(|| back.to_owned()),
            text: cloze.then(|| front.to_owned()),
            source: Span {
                start: span.0,
                end: span.1,
            },
        }
    }

    #[test]
    fn only_cards_that_could_be_accepted_become_drafts() {
        let cards = [
            card("basic", "What is ATP?", "Energy currency", (0, 10)),
            card("cloze", "{{c1::ATP}} stores energy", "", (0, 10)),
            card("basic", "Backwards span?", "yes", (8, 2)),
            card("basic", "Past the page?", "yes", (0, 101)),
            card("basic", "", "no front", (0, 10)),
            card("cloze", "no deletion", "", (0, 10)),
            card("basic", "Second good one", "kept", (20, 40)),
            card("basic", "Third good one", "over the quota", (20, 40)),
        ];
        let drafts = usable_drafts(&cards, 2, &kinds_of("basic"), "doc", 1, 100);
        let fronts: Vec<&str> = drafts.iter().map(|draft| draft.front.as_str()).collect();
        assert_eq!(fronts, ["What is ATP?", "Second good one"]);
        let drafts = usable_drafts(&cards, 10, &kinds_of("basic,cloze"), "doc", 1, 100);
        let kinds: Vec<CardKind> = drafts.iter().map(|draft| draft.kind).collect();
        assert_eq!(
            kinds,
            [
                CardKind::Basic,
                CardKind::Cloze,
                CardKind::Basic,
                CardKind::Basic
            ]
        );
    }

    #[test]
    fn stored_kinds_name_what_to_ask_for() {
        assert_eq!(kinds_of("basic"), [llm::CardKind::Basic]);
        assert_eq!(
            kinds_of("basic,cloze"),
            [llm::CardKind::Basic, llm::CardKind::Cloze]
        );
        assert!(kinds_of("essay").is_empty());
    }

    #[test]
    fn an_unreachable_llm_is_asked_again_backing_off_within_the_budget() {
        let budget = Duration::from_secs(20);
        let delays: Vec<u64> = (0..6)
            .scan(Duration::ZERO, |waited, attempt| {
                let delay = next_retry(attempt, *waited, budget)?;
                *waited += delay;
                Some(delay.as_secs())
            })
            .collect();
        assert_eq!(
            delays,
            [1, 2, 4, 8],
            "1+2+4+8 = 15 s; another 8 would pass 20"
        );
        assert_eq!(next_retry(0, Duration::ZERO, Duration::ZERO), None);
        assert!(
            i64::try_from(LLM_RETRY.as_millis()).expect("a few seconds") < LEASE_MS,
            "no other runner takes the job over while this one waits"
        );
    }

    #[test]
    fn the_card_budget_is_spread_over_the_pages_left() {
        assert_eq!(page_quota(10, 0, 3, 0), 4);
        assert_eq!(page_quota(10, 4, 3, 1), 3);
        assert_eq!(page_quota(10, 9, 3, 2), 1);
        assert_eq!(page_quota(10, 10, 3, 2), 0);
        assert_eq!(page_quota(5, 7, 3, 1), 0, "over budget asks for nothing");
    }
}

//! [`BatchBuilder`]: a batch's parent, callbacks and sub-batches, and the transaction that
//! records them with the children.

use std::fmt;

use serde::Serialize;

use crate::backend::batches::ChildRow;
use crate::backend::{now, BatchConnection, Storage, UtcDateTime};
use crate::completion::{self, Callback, When};
use crate::context::ContextObject;
use crate::error::{Error, Result};
use crate::lifecycle::{Checked, NewOperation, OperationDetails};
use crate::operation::BatchOperation;
use crate::registry::{Registry, RunArgs};
use crate::status::{OperationResult, Status};

/// One child of a batch: an operation of a registered group, with its details.
#[derive(Debug)]
pub struct Child {
    group: String,
    details: OperationDetails,
}

impl Child {
    /// A child running the group `group` (any group of the registry, whatever its mode: a
    /// batch's children are always queued for workers) with `args` (input, context object,
    /// priority, delay).
    pub fn new(group: impl Into<String>, args: RunArgs) -> Self {
        Child {
            group: group.into(),
            details: args.details,
        }
    }
}

/// Builds a batch: from [`Registry::batch`]; [`enqueue`](Self::enqueue) records it.
#[must_use = "nothing is stored until you call `.enqueue(&mut conn, children)`"]
pub struct BatchBuilder<'r, C> {
    registry: &'r Registry<C>,
    operation_type: String,
    details: OperationDetails,
    callbacks: Vec<(When, String)>,
    sub_batches: Vec<(BatchBuilder<'r, C>, Vec<Child>)>,
}

impl<C> fmt::Debug for BatchBuilder<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchBuilder")
            .field("operation_type", &self.operation_type)
            .field("details", &self.details)
            .field("callbacks", &self.callbacks)
            .field("sub_batches", &self.sub_batches.len())
            .finish()
    }
}

impl<C: BatchConnection + 'static> Registry<C> {
    /// A batch whose parent operation has type `operation_type` (a label: it needs no group,
    /// the parent is never run by a worker). See the [`batch`](crate::batch) module.
    pub fn batch(&self, operation_type: impl Into<String>) -> BatchBuilder<'_, C> {
        BatchBuilder {
            registry: self,
            operation_type: operation_type.into(),
            details: OperationDetails::default(),
            callbacks: Vec::new(),
            sub_batches: Vec::new(),
        }
    }
}

impl<'r, C: BatchConnection + 'static> BatchBuilder<'r, C> {
    /// The object the batch is about, stored on the parent.
    pub fn context_object(mut self, context: &impl ContextObject) -> Self {
        self.details.set_context_object(context);
        self
    }

    /// The application's key for the user who started the batch, stored on the parent.
    pub fn started_by(mut self, user_key: impl fmt::Display) -> Self {
        self.details.set_started_by(user_key);
        self
    }

    /// The parent's input data, as JSON.
    pub fn input<T: Serialize + ?Sized>(mut self, data: &T) -> Self {
        self.details.set_input(data);
        self
    }

    /// Enqueues an operation of group `group` when every child has succeeded, with the
    /// [`BatchSummary`](super::BatchSummary) as input. May be given several times.
    pub fn on_success(mut self, group: impl Into<String>) -> Self {
        self.callbacks.push((When::Success, group.into()));
        self
    }

    /// Enqueues an operation of group `group` when every child has finished, whatever the
    /// results (or the batch is cancelled), with the [`BatchSummary`](super::BatchSummary) as
    /// input. May be given several times.
    pub fn on_complete(mut self, group: impl Into<String>) -> Self {
        self.callbacks.push((When::Complete, group.into()));
        self
    }

    /// Adds a batch of its own, with `children`, as one child of this one: it counts as one
    /// finished child when it completes (as succeeded if all of its children did).
    pub fn sub_batch(mut self, batch: BatchBuilder<'r, C>, children: Vec<Child>) -> Self {
        self.sub_batches.push((batch, children));
        self
    }

    /// Records the batch in one transaction (a savepoint inside the caller's): the parent,
    /// `running`; every child, `unprocessed` (one `COPY` on PostgreSQL, multi-row `INSERT`s
    /// elsewhere, taken from `children` as they are sent); the sub-batches; the counts row.
    /// Returns the parent. A batch without children completes at once: its parent is finished
    /// `successful` and its callbacks enqueued, in the same transaction.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownActionGroup`] for a child's or a callback's group the registry does not
    /// have; [`Error::ValueTooLong`] or [`Error::SerializeData`] for a child's details. Nothing
    /// is stored then.
    pub fn enqueue(
        self,
        conn: &mut C,
        children: impl IntoIterator<Item = Child>,
    ) -> Result<BatchOperation> {
        let mut children = children.into_iter();
        conn.transaction(|conn| self.record(conn, None, &mut children))
    }

    /// Records this batch, as a child of `parent` if given, in the caller's transaction.
    fn record(
        self,
        conn: &mut C,
        parent: Option<i64>,
        children: &mut dyn Iterator<Item = Child>,
    ) -> Result<BatchOperation> {
        let callbacks = self.callbacks_json()?;
        let operation = NewOperation::with_details(&self.operation_type, true, self.details)
            .child_of(parent)
            .insert(conn)?;
        let registry = self.registry;
        let created = UtcDateTime(now());
        // The iterator stops at the first child in error, which is then returned.
        let mut refused = None;
        let mut rows = children.map_while(|child| {
            child_row(registry, child, operation.id, created)
                .map_err(|error| refused = Some(error))
                .ok()
        });
        let inserted = conn.storage().insert_children(&mut rows)?;
        if let Some(error) = refused {
            return Err(error);
        }
        let total = inserted + self.sub_batches.len();
        let total = i64::try_from(total).map_err(|_| Error::Internal("batch too large"))?;
        conn.storage()
            .insert_batch(operation.id, total, &callbacks, false)?;
        let nested = !self.sub_batches.is_empty();
        for (batch, kids) in self.sub_batches {
            batch.record(conn, Some(operation.id), &mut kids.into_iter())?;
        }
        if total == 0 {
            completion::complete_empty(conn.storage(), operation.id)?;
        }
        // The parent changed since it was inserted only if it completed at once, or a
        // sub-batch did and was counted into it: only then is it read again.
        if total == 0 || nested {
            return BatchOperation::find(conn, operation.id);
        }
        Ok(operation)
    }

    /// Records the parent, `running`, and its counts row for `total` children, in the caller's
    /// transaction: a workflow's, whose steps its caller inserts. Returns the parent.
    pub(crate) fn record_parent(
        self,
        conn: &mut C,
        total: i64,
        workflow: bool,
    ) -> Result<BatchOperation> {
        let callbacks = self.callbacks_json()?;
        let operation =
            NewOperation::with_details(&self.operation_type, true, self.details).insert(conn)?;
        conn.storage()
            .insert_batch(operation.id, total, &callbacks, workflow)?;
        Ok(operation)
    }

    /// The registry the batch's groups come from.
    pub(crate) fn registry(&self) -> &'r Registry<C> {
        self.registry
    }

    /// The callbacks as the counts row keeps them, each group checked.
    fn callbacks_json(&self) -> Result<String> {
        if self.callbacks.is_empty() {
            return Ok(String::new());
        }
        let callbacks = self
            .callbacks
            .iter()
            .map(|(when, name)| {
                let group = self.registry.known_group(name)?;
                Ok(Callback {
                    when: *when,
                    operation_type: name.clone(),
                    queue: group.queue_name().to_owned(),
                    max_attempts: group.attempts_allowed(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        serde_json::to_string(&callbacks).map_err(|source| Error::SerializeData {
            field: "batch callbacks",
            source,
        })
    }
}

/// The row of `child`, a child of `parent`, checked as any new operation is.
pub(crate) fn child_row<C: BatchConnection + 'static>(
    registry: &Registry<C>,
    child: Child,
    parent: i64,
    created: UtcDateTime,
) -> Result<ChildRow> {
    let group = registry.known_group(&child.group)?;
    let queue = group.queue_name();
    let checked = Checked::new(&child.group, queue, child.details)?;
    Ok(ChildRow {
        created_datetime: created,
        context_object_type: checked.context_object_type,
        context_object_id: checked.context_object_id,
        started_by: checked.started_by,
        operationtype: child.group,
        status: Status::Unprocessed.as_str(),
        result: OperationResult::NotAvailable.as_str(),
        input_data_json: checked.input_data_json,
        queue: queue.to_owned(),
        priority: checked.priority,
        run_after: checked.run_after.map(UtcDateTime),
        max_attempts: group.attempts_allowed(),
        parent_id: parent,
    })
}

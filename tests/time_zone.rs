//! Timestamps are UTC and read back identical whatever the session's time zone.

use batchframework_diesel::{BatchOperation, OperationFilter};
use batchframework_tests::{backend_tests, migrated, TestBackend};
use chrono::{Duration, Utc};

fn timestamps_do_not_move_with_the_session_time_zone<B: TestBackend>() {
    let (db, mut utc_conn) = migrated::<B>();
    let mut shifted = B::connect(&db);
    B::set_session_time_zone(&mut shifted);

    let before = Utc::now() - Duration::seconds(1);
    let mut written_shifted = BatchOperation::create_synchronous("tz")
        .insert(&mut shifted)
        .unwrap();
    written_shifted.finish(&mut shifted).unwrap();
    let written_utc = BatchOperation::create_synchronous("tz")
        .insert(&mut utc_conn)
        .unwrap();
    let after = Utc::now() + Duration::seconds(1);

    for op in [&written_shifted, &written_utc] {
        // Written in one zone, read in both: the same instant, to the microsecond.
        assert_eq!(&BatchOperation::find(&mut utc_conn, op.id()).unwrap(), op);
        assert_eq!(&BatchOperation::find(&mut shifted, op.id()).unwrap(), op);
        assert!(op.created_datetime() > before && op.created_datetime() < after);
    }
    // Comparisons happen in UTC too: both are "created before now" from either session.
    let filter = OperationFilter::new().created_before(after);
    assert_eq!(filter.count(&mut shifted).unwrap(), 2);
    assert_eq!(filter.count(&mut utc_conn).unwrap(), 2);
    let filter = OperationFilter::new().created_before(before);
    assert_eq!(filter.count(&mut shifted).unwrap(), 0);
}

backend_tests!(timestamps_do_not_move_with_the_session_time_zone);

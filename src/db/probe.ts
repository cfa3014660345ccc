import { sql } from 'drizzle-orm';
import type { Db } from '../lib/request-scope';

/** Whether the datastore answers at all; the driver's text goes to the log under `label`, never further. */
export async function datastoreAnswers(db: Db, label: string): Promise<boolean> {
  try {
    await db.execute(sql`SELECT 1`);
    return true;
  } catch (err) {
    console.error(`${label}: database unreachable`, err);
    return false;
  }
}

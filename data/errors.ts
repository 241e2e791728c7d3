/**
 * The error users of the data module can cause: a missing input, a corrupt shard, text that is not
 * UTF-8, an option out of range. The CLI prints its message as one line and exits 2.
 *
 * @module
 */

/** An input or option the user can fix; the message is one line naming the file or option. */
export class DataError extends Error {
  /** Creates the error with its one-line message. */
  constructor(message: string) {
    super(message);
    this.name = "DataError";
  }
}

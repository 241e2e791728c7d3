/**
 * The errors users can cause: {@linkcode UserError}, which every member's user errors extend, so
 * that a command tells them from programming errors with `instanceof`; and the data module's own,
 * {@linkcode DataError} (a missing input, a corrupt shard, text that is not UTF-8, an option out of
 * range). The CLI prints their message as one line and exits 2.
 *
 * UserError lives here because data is the lowest member: kernels, core, eval and the CLI import
 * data (kernels through the `@inheritune/data/errors` entry point, this file alone).
 *
 * @module
 */

/**
 * An error the user can cause and fix: a missing or corrupt input, an option out of range, a shape
 * the device cannot take. Its message is one line naming the file, option or shape.
 */
export class UserError extends Error {
  /** Creates the error with its one-line message. */
  constructor(message: string) {
    super(message);
    this.name = "UserError";
  }
}

/** An input or option the user can fix; the message is one line naming the file or option. */
export class DataError extends UserError {
  /** Creates the error with its one-line message. */
  constructor(message: string) {
    super(message);
    this.name = "DataError";
  }
}

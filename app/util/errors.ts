// Errors meant for a person: the message says what was wrong and what to do. Every face shows the
// message as it is (no stack); anything else is a bug and is shown with its stack in logs.
export class UserError extends Error {
  constructor(
    message: string,
    /** A stable code the UI can branch on (e.g. 'NOT_A_MODEL', 'CANCELLED'). */
    readonly code: string = 'USER_ERROR',
  ) {
    super(message);
    this.name = 'UserError';
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

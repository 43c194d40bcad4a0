/**
 * What a promise rejects with, for tests that assess an error's class and
 * message: fails the test when the promise resolves instead.
 */
export async function rejection<E = Error>(p: Promise<unknown>): Promise<E> {
  try {
    await p;
  } catch (e) {
    return e as E;
  }
  throw new Error("expected the promise to reject");
}

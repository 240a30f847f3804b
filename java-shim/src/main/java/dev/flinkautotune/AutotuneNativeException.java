package dev.flinkautotune;

/** Thrown by the native library for any error or panic inside it. */
public class AutotuneNativeException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public AutotuneNativeException(String message) {
        super(message);
    }
}

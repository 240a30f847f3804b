package dev.flinkautotune;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.util.Locale;

/**
 * Loads the native library once per class loader. The jar bundles one library per platform
 * under {@code native/<platform>/}; it is copied into a fresh private folder for every load,
 * so a second plugin class loader in the same JVM loads its own copy instead of failing with
 * "already loaded in another classloader".
 */
final class NativeLoader {
    static final String LIBRARY_NAME = "flink_autotune";

    private static final Object LOCK = new Object();
    private static Result result; // guarded by LOCK: the first attempt decides for this class loader

    private NativeLoader() {}

    /** Outcome of loading; {@code firstAttempt} tells who should report a failure (once). */
    static final class Result {
        final boolean loaded;
        final String source;
        final String cause;
        final String fix;
        final boolean firstAttempt;

        private Result(boolean loaded, String source, String cause, String fix, boolean firstAttempt) {
            this.loaded = loaded;
            this.source = source;
            this.cause = cause;
            this.fix = fix;
            this.firstAttempt = firstAttempt;
        }

        private Result again() {
            return new Result(loaded, source, cause, fix, false);
        }
    }

    /**
     * @param explicitPath a library file to load as-is (option {@code native-library}), or null
     * @param tmpDir parent folder for the extracted copy (option {@code native-tmpdir}), or null
     */
    static Result load(String explicitPath, String tmpDir) {
        synchronized (LOCK) {
            if (result != null) {
                return result.again();
            }
            result = attempt(explicitPath, tmpDir);
            return result;
        }
    }

    /** {@code linux-x86_64}, {@code linux-aarch64}, {@code darwin-aarch64}, ... */
    static String platform() {
        return platform(System.getProperty("os.name", ""), System.getProperty("os.arch", ""));
    }

    static String platform(String osName, String osArch) {
        String os = osName.toLowerCase(Locale.ROOT);
        String family = os.startsWith("linux") ? "linux"
                : os.startsWith("mac") || os.startsWith("darwin") ? "darwin"
                : os.startsWith("windows") ? "windows"
                : os.replaceAll("[^a-z0-9]", "");
        String arch = osArch.toLowerCase(Locale.ROOT);
        switch (arch) {
            case "amd64":
            case "x86_64":
                arch = "x86_64";
                break;
            case "aarch64":
            case "arm64":
                arch = "aarch64";
                break;
            default:
                arch = arch.replaceAll("[^a-z0-9_]", "");
        }
        return family + "-" + arch;
    }

    static String resourcePath(String platform) {
        return "/native/" + platform + "/" + System.mapLibraryName(LIBRARY_NAME);
    }

    private static Result attempt(String explicitPath, String tmpDir) {
        String platform = platform();
        Path library;
        String source;
        if (explicitPath != null && !explicitPath.trim().isEmpty()) {
            library = Paths.get(explicitPath.trim());
            source = library.toString();
            if (!Files.isRegularFile(library)) {
                return failure("metrics.reporter.autotune.native-library points to " + library + ", which is not a file",
                        "point it to a " + System.mapLibraryName(LIBRARY_NAME) + " built for " + platform
                                + ", or remove the option to use the one inside the jar");
            }
        } else {
            String resource = resourcePath(platform);
            try (InputStream in = NativeLoader.class.getResourceAsStream(resource)) {
                if (in == null) {
                    return failure("this jar has no native library for platform " + platform + " (looked for " + resource + ")",
                            "use a flink-autotune jar built on " + platform + " (scripts/build.sh), or set "
                                    + "metrics.reporter.autotune.native-library to a library built for it");
                }
                Path parent = tmpDir == null || tmpDir.trim().isEmpty()
                        ? Paths.get(System.getProperty("java.io.tmpdir"))
                        : Files.createDirectories(Paths.get(tmpDir.trim()));
                Path folder = Files.createTempDirectory(parent, "flink-autotune-");
                library = folder.resolve(System.mapLibraryName(LIBRARY_NAME));
                Files.copy(in, library, StandardCopyOption.REPLACE_EXISTING);
                source = "jar:" + resource + " via " + folder;
            } catch (IOException | SecurityException e) {
                return failure("could not extract the native library: " + e,
                        "set metrics.reporter.autotune.native-tmpdir to a writable folder");
            }
        }
        try {
            System.load(library.toAbsolutePath().toString());
        } catch (UnsatisfiedLinkError e) {
            return failure("loading " + library + " failed: " + e.getMessage(), fixFor(e.getMessage(), platform));
        } finally {
            if (explicitPath == null || explicitPath.trim().isEmpty()) {
                deleteQuietly(library); // mapped already (or failed): the copy is not needed any more
            }
        }
        try {
            String nativeVersion = AutotuneNative.nativeVersion();
            return new Result(true, source + " (native " + nativeVersion + ")", null, null, true);
        } catch (UnsatisfiedLinkError e) {
            return failure(library + " is not a flink-autotune library of this version: " + e.getMessage(),
                    "use the library built together with this jar");
        }
    }

    /** Turns the platform's loader message into the action that fixes it. */
    static String fixFor(String message, String platform) {
        String m = message == null ? "" : message;
        if (m.contains("failed to map segment") || m.contains("Operation not permitted") || m.contains("noexec")) {
            return "the temp folder is probably mounted noexec: set metrics.reporter.autotune.native-tmpdir "
                    + "to a folder where files may be executed";
        }
        if (m.contains("invalid ELF header") || m.contains("file too short") || m.contains("wrong ELF class")
                || m.contains("not a dynamic executable") || m.contains("ELF")) {
            return "the library file is damaged or built for another platform than " + platform
                    + ": reinstall the flink-autotune jar (or fix metrics.reporter.autotune.native-library)";
        }
        if (m.contains("GLIBC") || m.contains("version `")) {
            return "the library needs a newer C library than this machine has: build it on (or for) this system";
        }
        return "check that the library was built for " + platform + " and that the JVM may load it";
    }

    private static Result failure(String cause, String fix) {
        return new Result(false, null, cause, fix, true);
    }

    private static void deleteQuietly(Path library) {
        try {
            Files.deleteIfExists(library);
            Files.deleteIfExists(library.getParent());
        } catch (IOException | SecurityException ignored) {
            library.toFile().deleteOnExit();
        }
    }
}
